// Package delivery pushes each hub Application into its spoke's agent
// namespace over the pooled spoke clients, deletes the spoke copy when the
// hub Application goes (finalizer), and mirrors the spoke copy's status
// back into the hub Application.
package delivery

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/metrics"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/project"
)

// Reconciler delivers hub Applications.
type Reconciler struct {
	Client   client.Client
	Pool     *spokes.Pool
	Recorder events.EventRecorder
	// PerCluster bounds in-flight spoke requests per cluster (default 8),
	// so a slow spoke never takes every worker.
	PerCluster int
	// Workers is the number of concurrent reconciles (default 32).
	Workers int
	// Projects reads the Projects Applications are checked against (nil: no checks).
	Projects project.Lookup

	ctrl        controller.Controller
	spokeEvents chan event.GenericEvent // spoke copies changed: their hub Applications
	sems        sync.Map                // cluster → chan struct{}
	written     sync.Map                // Application key → writtenStatus last written
	warned      clusterWarnings         // cluster-wide reasons already told, by cluster
}

// SetupWithManager registers the controller, indexes, and spoke watches.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.PerCluster == 0 {
		r.PerCluster = 8
	}
	if r.Workers == 0 {
		r.Workers = 32
	}
	r.spokeEvents = make(chan event.GenericEvent, 4096)
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("delivery").
		For(&flotillav1.Application{}).
		Watches(&flotillav1.MemberCluster{}, handler.EnqueueRequestsFromMapFunc(r.appsOfCluster), builder.WithPredicates(clusterChanged)).
		WatchesRawSource(source.Channel(r.spokeEvents, &handler.EnqueueRequestForObject{})).
		Watches(&flotillav1.Project{}, handler.EnqueueRequestsFromMapFunc(r.appsOfProject)).
		WithOptions(controller.Options{MaxConcurrentReconciles: r.Workers}).
		Build(r)
	if err != nil {
		return err
	}
	r.ctrl = c
	r.Pool.OnAdd(r.watchSpoke)
	return nil
}

// watchSpoke maps spoke Application events back to their hub Application.
// The handler lives on the spoke cache's informer, so it stops with the
// pool entry (a replaced or removed cluster leaves nothing running); the
// events reach the controller through one channel source.
func (r *Reconciler) watchSpoke(c *spokes.Cluster) {
	inf, err := c.Cluster.GetCache().GetInformer(context.Background(), &flotillav1.Application{}, cache.BlockUntilSynced(false))
	if err != nil {
		r.ctrl.GetLogger().Error(err, "Watch spoke Applications", "cluster", c.Name)
		return
	}
	send := func(obj any) {
		if tomb, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
			obj = tomb.Obj
		}
		a, ok := obj.(*flotillav1.Application)
		if !ok {
			return
		}
		ns, name := a.Annotations[flotillav1.AnnotationHubNamespace], a.Annotations[flotillav1.AnnotationHubName]
		if ns == "" || name == "" {
			return
		}
		select {
		case r.spokeEvents <- event.GenericEvent{Object: &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}}:
		case <-c.Done():
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: send, UpdateFunc: func(_, obj any) { send(obj) }, DeleteFunc: send,
	}); err != nil {
		r.ctrl.GetLogger().Error(err, "Watch spoke Applications", "cluster", c.Name)
	}
}

// clusterChanged passes the MemberCluster events delivery acts on: a
// cluster created or deleted, its spec changed (paused, agent namespace) or
// its Ready condition changed (a pooled connection appeared or failed).
// Status writes that change nothing of this (heartbeats, application
// counts) would otherwise re-queue every Application of the cluster.
var clusterChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		oldMC, ok1 := e.ObjectOld.(*flotillav1.MemberCluster)
		newMC, ok2 := e.ObjectNew.(*flotillav1.MemberCluster)
		if !ok1 || !ok2 {
			return true
		}
		return oldMC.Generation != newMC.Generation || !newMC.DeletionTimestamp.Equal(oldMC.DeletionTimestamp) ||
			conditionStatus(oldMC, flotillav1.ConditionReady) != conditionStatus(newMC, flotillav1.ConditionReady) ||
			conditionStatus(oldMC, flotillav1.ConditionAgentAvailable) != conditionStatus(newMC, flotillav1.ConditionAgentAvailable)
	},
}

func conditionStatus(mc *flotillav1.MemberCluster, typ string) metav1.ConditionStatus {
	if c := apimeta.FindStatusCondition(mc.Status.Conditions, typ); c != nil {
		return c.Status
	}
	return metav1.ConditionUnknown
}

func (r *Reconciler) appsOfCluster(ctx context.Context, o client.Object) []reconcile.Request {
	var list flotillav1.ApplicationList
	if err := r.Client.List(ctx, &list, client.MatchingFields{flotillav1.IndexApplicationCluster: o.GetName()}, client.UnsafeDisableDeepCopy); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, a := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
	}
	return out
}

// Tracked is how many Applications and clusters delivery keeps state for
// (tests).
func (r *Reconciler) Tracked() (apps, clusters int) {
	r.written.Range(func(any, any) bool { apps++; return true })
	r.sems.Range(func(any, any) bool { clusters++; return true })
	return apps, clusters
}

// SpokeName is the spoke copy's name: unique across hub namespaces.
func SpokeName(hubNamespace, name string) string {
	n := hubNamespace + "." + name
	if len(n) <= 253 {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	return n[:240] + "-" + hex.EncodeToString(sum[:6])
}

// Reconcile delivers one hub Application and mirrors its spoke status.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	defer func() { metrics.ReconcileDuration.WithLabelValues("delivery").Observe(time.Since(start).Seconds()) }()

	app := &flotillav1.Application{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.written.Delete(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if flotillav1.IsSpokeCopy(app) {
		return ctrl.Result{}, nil // a copy this hub delivered to itself (in-cluster): never delivered again
	}
	clusterName := app.Spec.Destination.Cluster
	ctx = log.IntoContext(ctx, log.FromContext(ctx).WithValues("cluster", clusterName))
	mc := &flotillav1.MemberCluster{}
	mcErr := r.Client.Get(ctx, types.NamespacedName{Name: clusterName}, mc)
	if mcErr != nil && !apierrors.IsNotFound(mcErr) {
		return ctrl.Result{}, mcErr
	}
	clusterMissing := apierrors.IsNotFound(mcErr)

	if !app.DeletionTimestamp.IsZero() {
		return r.finalize(ctx, app, mc, clusterMissing)
	}
	if !controllerutil.ContainsFinalizer(app, flotillav1.FinalizerDelivery) {
		patch := client.MergeFrom(app.DeepCopy())
		controllerutil.AddFinalizer(app, flotillav1.FinalizerDelivery)
		if err := r.Client.Patch(ctx, app, patch); err != nil {
			return ctrl.Result{}, err
		}
	}

	switch {
	case clusterMissing:
		r.sems.Delete(clusterName) // the cluster left: its semaphore goes (a new one is made if it comes back)
		msg := fmt.Sprintf("MemberCluster %q does not exist: register it (flotilla cluster register) or fix destination.cluster", clusterName)
		return r.notDelivered(ctx, app, nil, &dark{flotillav1.ReasonClusterNotFound, msg}, flotillav1.ReasonClusterNotFound, msg, time.Minute)
	case mc.Spec.Paused:
		spoke, dk := r.spokeCopy(ctx, app, mc)
		return r.notDelivered(ctx, app, spoke, dk, flotillav1.ReasonClusterPaused, "delivery to this cluster is paused; the spoke keeps what it has", 0)
	}
	rules, err := r.projectRules(ctx, app, mc)
	switch {
	case project.IsViolation(err):
		// Not delivered, and the spoke keeps what it has.
		spoke, dk := r.spokeCopy(ctx, app, mc)
		return r.notDelivered(ctx, app, spoke, dk, flotillav1.ReasonProjectViolation, err.Error()+"; not delivered, the spoke keeps what it has", 0)
	case err != nil:
		return ctrl.Result{}, err
	}
	rc, ok := r.Pool.Get(clusterName)
	if healthy, msg := healthOf(rc, ok); !healthy {
		return r.notDelivered(ctx, app, nil, unreachable(mc, msg), flotillav1.ReasonClusterUnreachable, msg, 15*time.Second)
	}
	release, ok := r.acquire(clusterName)
	if !ok {
		return ctrl.Result{RequeueAfter: 250 * time.Millisecond}, nil
	}
	defer release()

	spoke, err := r.cachedSpoke(ctx, rc, app)
	if err != nil {
		return r.notDelivered(ctx, app, nil, &dark{flotillav1.ReasonSpokeUnreadable, err.Error()}, flotillav1.ReasonSpokeUnreadable, err.Error(), 15*time.Second)
	}
	desired := desiredSpoke(app, rc.AgentNamespace)
	if rules != "" {
		desired.Annotations[flotillav1.AnnotationProjectRules] = rules
	}
	if spoke == nil || !sameSpoke(desired, spoke) {
		if err := r.applySpoke(ctx, rc, desired); err != nil {
			return r.notDelivered(ctx, app, spoke, agentGone(mc), flotillav1.ReasonDeliveryFailed, err.Error(), 10*time.Second)
		}
		metrics.DeliveryLatency.WithLabelValues(clusterName).Observe(time.Since(lastChange(app)).Seconds())
	}
	delivered := metav1.Condition{Type: flotillav1.ConditionDelivered, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonDelivered,
		Message: fmt.Sprintf("applied to %s/%s on %s", rc.AgentNamespace, desired.Name, clusterName)}
	return ctrl.Result{}, r.mirror(ctx, app, spoke, delivered, agentGone(mc))
}

// dark says why the hub cannot know what the agent does with an
// Application: its health and sync are then Unknown, for that reason.
type dark struct{ reason, message string }

// unreachable is the darkness of a cluster the hub cannot reach: no report
// has come since the cluster stopped answering.
func unreachable(mc *flotillav1.MemberCluster, msg string) *dark {
	if c := apimeta.FindStatusCondition(mc.Status.Conditions, flotillav1.ConditionReady); c != nil && c.Status != metav1.ConditionTrue {
		msg = fmt.Sprintf("no report since %s: %s", c.LastTransitionTime.UTC().Format(time.RFC3339), msg)
	}
	return &dark{flotillav1.ReasonClusterUnreachable, msg}
}

// agentGone is the darkness of a cluster whose agent's heartbeat is not
// seen (expired, never renewed, no agent); nil while it is.
func agentGone(mc *flotillav1.MemberCluster) *dark {
	c := apimeta.FindStatusCondition(mc.Status.Conditions, flotillav1.ConditionAgentAvailable)
	if c == nil || c.Status == metav1.ConditionTrue {
		// Not probed yet (a new cluster): the agent's own report decides.
		return nil
	}
	return &dark{flotillav1.ReasonAgentUnavailable, fmt.Sprintf("the agent is not available (%s): %s", c.Reason, c.Message)}
}

func healthOf(rc *spokes.Cluster, ok bool) (bool, string) {
	if !ok {
		return false, "no connection to the cluster yet: see its MemberCluster's Ready condition"
	}
	if healthy, msg := rc.Health(); !healthy {
		return false, "the cluster is unreachable: " + msg
	}
	return true, ""
}

func (r *Reconciler) acquire(cluster string) (func(), bool) {
	v, _ := r.sems.LoadOrStore(cluster, make(chan struct{}, r.PerCluster))
	sem := v.(chan struct{})
	select {
	case sem <- struct{}{}:
		return func() { <-sem }, true
	default:
		return nil, false
	}
}

func (r *Reconciler) cachedSpoke(ctx context.Context, rc *spokes.Cluster, app *flotillav1.Application) (*flotillav1.Application, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	spoke := &flotillav1.Application{}
	err := rc.Client().Get(ctx, types.NamespacedName{Namespace: rc.AgentNamespace, Name: SpokeName(app.Namespace, app.Name)}, spoke)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the spoke copy: %w", err)
	}
	return spoke, nil
}

// spokeCopy reads the spoke copy if the cluster is connected (for the
// status mirror of a paused cluster), or says why it cannot.
func (r *Reconciler) spokeCopy(ctx context.Context, app *flotillav1.Application, mc *flotillav1.MemberCluster) (*flotillav1.Application, *dark) {
	rc, ok := r.Pool.Get(mc.Name)
	if healthy, msg := healthOf(rc, ok); !healthy {
		return nil, unreachable(mc, msg)
	}
	spoke, err := r.cachedSpoke(ctx, rc, app)
	if err != nil {
		return nil, &dark{flotillav1.ReasonSpokeUnreadable, err.Error()}
	}
	return spoke, agentGone(mc)
}

func desiredSpoke(app *flotillav1.Application, agentNamespace string) *flotillav1.Application {
	labels := map[string]string{flotillav1.LabelManagedBy: flotillav1.FieldManagerHub}
	for k, v := range app.Labels {
		labels[k] = v
	}
	annotations := map[string]string{flotillav1.AnnotationHubNamespace: app.Namespace, flotillav1.AnnotationHubName: app.Name,
		flotillav1.AnnotationHubGeneration: strconv.FormatInt(app.Generation, 10)}
	// Refresh and sync requested on the hub reach the agent.
	for _, k := range []string{flotillav1.AnnotationRefresh, flotillav1.AnnotationSync} {
		if v := app.Annotations[k]; v != "" {
			annotations[k] = v
		}
	}
	return &flotillav1.Application{
		TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "Application"},
		ObjectMeta: metav1.ObjectMeta{
			Name: SpokeName(app.Namespace, app.Name), Namespace: agentNamespace, Labels: labels, Annotations: annotations,
		},
		Spec: app.Spec,
	}
}

func sameSpoke(desired, cur *flotillav1.Application) bool {
	return kube.Converged(desired.Spec, cur.Spec, desired, cur)
}

func (r *Reconciler) applySpoke(ctx context.Context, rc *spokes.Cluster, desired *flotillav1.Application) error {
	if err := kube.Apply(ctx, rc.Client(), desired, flotillav1.FieldManagerHub); err != nil {
		return fmt.Errorf("apply to %s/%s on %s: %w", rc.AgentNamespace, desired.Name, rc.Name, err)
	}
	return nil
}

func (r *Reconciler) finalize(ctx context.Context, app *flotillav1.Application, mc *flotillav1.MemberCluster, clusterMissing bool) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(app, flotillav1.FinalizerDelivery) {
		return ctrl.Result{}, nil
	}
	switch {
	case clusterMissing:
		// The cluster left the fleet: nothing can be reached or cleaned.
	case mc.Spec.Paused:
		spoke, dk := r.spokeCopy(ctx, app, mc)
		return r.notDelivered(ctx, app, spoke, dk, flotillav1.ReasonClusterPaused, "deletion waits until the cluster is unpaused: a paused cluster loses nothing", time.Minute)
	default:
		rc, ok := r.Pool.Get(mc.Name)
		if healthy, msg := healthOf(rc, ok); !healthy {
			return r.notDelivered(ctx, app, nil, unreachable(mc, msg), flotillav1.ReasonClusterUnreachable, "cannot remove the spoke copy yet: "+msg, 15*time.Second)
		}
		spoke := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: rc.AgentNamespace, Name: SpokeName(app.Namespace, app.Name)}}
		if err := rc.Client().Delete(ctx, spoke); err != nil && !apierrors.IsNotFound(err) {
			msg := fmt.Sprintf("delete the spoke copy: %v", err)
			return r.notDelivered(ctx, app, nil, &dark{flotillav1.ReasonDeletionFailed, msg}, flotillav1.ReasonDeletionFailed, msg, 10*time.Second)
		}
	}
	patch := client.MergeFrom(app.DeepCopy())
	controllerutil.RemoveFinalizer(app, flotillav1.FinalizerDelivery)
	if err := r.Client.Patch(ctx, app, patch); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.written.Delete(client.ObjectKeyFromObject(app))
	return ctrl.Result{}, nil
}

func (r *Reconciler) notDelivered(ctx context.Context, app *flotillav1.Application, spoke *flotillav1.Application, dk *dark, reason, msg string, after time.Duration) (ctrl.Result, error) {
	cond := metav1.Condition{Type: flotillav1.ConditionDelivered, Status: metav1.ConditionFalse, Reason: reason, Message: msg}
	if old := apimeta.FindStatusCondition(app.Status.Conditions, flotillav1.ConditionDelivered); r.Recorder != nil && (old == nil || old.Reason != reason) {
		switch {
		case !clusterWide[reason]:
			r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, reason, "Deliver", "%s", msg)
		case r.warned.first(app.Spec.Destination.Cluster, reason):
			// One Event per cluster and reason, not one per Application: a
			// dead cluster with 10,000 Applications is one piece of news.
			r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, reason, "Deliver", "cluster %s: %s (said once per cluster and reason every %s; each Application's Delivered condition says it too)",
				app.Spec.Destination.Cluster, msg, clusterWarningEvery)
		}
	}
	if err := r.mirror(ctx, app, spoke, cond, dk); err != nil {
		return ctrl.Result{}, err
	}
	return ctrl.Result{RequeueAfter: after}, nil
}

// mirror writes the hub Application's status: the Delivered condition plus
// what the hub can truthfully say of the agent's report (see report). It
// writes nothing when nothing changed.
func (r *Reconciler) mirror(ctx context.Context, app *flotillav1.Application, spoke *flotillav1.Application, delivered metav1.Condition, dk *dark) error {
	want := app.Status.DeepCopy()
	conds := append([]metav1.Condition{delivered}, report(want, app, spoke, dk)...)
	// Ready: Delivered, then the agent's Synced and Healthy. While the
	// current spec is not delivered, the spoke's report is not about it:
	// Ready says why delivery waits (Delivered is about this generation).
	parts, observed := []metav1.Condition{delivered}, app.Generation
	if delivered.Status == metav1.ConditionTrue {
		parts = append(parts, kube.Part(conds, flotillav1.ConditionSynced), kube.Part(conds, flotillav1.ConditionHealthy))
		observed = want.ObservedGeneration
	}
	summary := kube.Summarize(app.Generation, observed, kube.ApplicationStalled, parts...)
	changed := want.ObservedGeneration != app.Status.ObservedGeneration ||
		!equality.Semantic.DeepEqual(want.Sync, app.Status.Sync) || !equality.Semantic.DeepEqual(want.Health, app.Status.Health) ||
		!equality.Semantic.DeepEqual(want.Resources, app.Status.Resources) || want.ResourceCount != app.Status.ResourceCount ||
		want.DriftCorrections != app.Status.DriftCorrections || !equality.Semantic.DeepEqual(want.LastSyncTime, app.Status.LastSyncTime) ||
		want.LastSyncError != app.Status.LastSyncError || want.LastHandledRefresh != app.Status.LastHandledRefresh || want.LastHandledSync != app.Status.LastHandledSync
	for _, c := range conds {
		changed = changed || !kube.HasCondition(app.Status.Conditions, c)
	}
	changed = changed || kube.SummaryChanged(app.Status.Conditions, summary)
	conds = append(conds, summary...)
	if !changed {
		return nil
	}
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(want)
	if err != nil {
		return err
	}
	st["conditions"] = kube.Conditions(app.Status.Conditions, app.Generation, conds...)
	digest, err := statusDigest(st)
	if err != nil {
		return err
	}
	key := client.ObjectKeyFromObject(app)
	if last, ok := r.written.Load(key); ok && last.(writtenStatus) == (writtenStatus{app.UID, digest}) {
		// This very status was written by the previous reconcile and the
		// cache has not caught up yet (a spoke event re-queued the
		// Application at once): writing it again would change nothing.
		return nil
	}
	if err := kube.ApplyStatus(ctx, r.Client, app, "Application", flotillav1.FieldManagerHubDelivery, st); err != nil {
		r.written.Delete(key)
		return err
	}
	r.written.Store(key, writtenStatus{app.UID, digest})
	return nil
}

// writtenStatus identifies the status last written to an Application.
type writtenStatus struct {
	uid    types.UID
	digest uint64
}

// statusDigest hashes a status as it is written, conditions' transition
// times left out (they are recomputed from the possibly stale cache).
func statusDigest(st map[string]any) (uint64, error) {
	h := fnv.New64a()
	conds, _ := st["conditions"].([]any)
	rest := make(map[string]any, len(st))
	for k, v := range st {
		if k != "conditions" {
			rest[k] = v
		}
	}
	if err := json.NewEncoder(h).Encode(rest); err != nil {
		return 0, err
	}
	for _, c := range conds {
		m := maps.Clone(c.(map[string]any))
		delete(m, "lastTransitionTime")
		if err := json.NewEncoder(h).Encode(m); err != nil {
			return 0, err
		}
	}
	return h.Sum64(), nil
}

// lastChange is when the hub Application's spec last changed, as near as
// the hub can tell (its managedFields' last update by the hub's manager).
func lastChange(app *flotillav1.Application) time.Time {
	t := app.CreationTimestamp.Time
	for _, mf := range app.ManagedFields {
		if mf.Manager == flotillav1.FieldManagerHub && mf.Time != nil && mf.Time.After(t) {
			t = mf.Time.Time
		}
	}
	return t
}

// clusterWide are the reasons that hold for every Application of a cluster.
var clusterWide = map[string]bool{flotillav1.ReasonClusterNotFound: true, flotillav1.ReasonClusterPaused: true,
	flotillav1.ReasonClusterUnreachable: true, flotillav1.ReasonSpokeUnreadable: true}

// clusterWarningEvery is how often a cluster-wide reason is told again.
const clusterWarningEvery = 10 * time.Minute

// clusterWarnings remembers when each cluster-wide reason was last told.
type clusterWarnings struct {
	mu   sync.Mutex
	last map[[2]string]time.Time
}

// first reports whether (cluster, reason) has not been told within
// clusterWarningEvery, and records it as told now.
func (w *clusterWarnings) first(cluster, reason string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.last == nil {
		w.last = map[[2]string]time.Time{}
	}
	k := [2]string{cluster, reason}
	if t, ok := w.last[k]; ok && time.Since(t) < clusterWarningEvery {
		return false
	}
	for key, t := range w.last { // nothing only grows
		if time.Since(t) >= clusterWarningEvery {
			delete(w.last, key)
		}
	}
	w.last[k] = time.Now()
	return true
}
