package agent

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/log"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// MaxResources bounds status.resources.
const MaxResources = 200

// Reconciler syncs the Applications in one namespace.
type Reconciler struct {
	Client    client.Client
	Git       *git.Cache
	Recorder  events.EventRecorder
	Namespace string
	Render    RenderOptions
	// SyncInterval between Git re-checks (default 3m).
	SyncInterval time.Duration
	// HealthInterval between re-checks while something is Progressing (default 5s).
	HealthInterval time.Duration
	// WatchNamespaces limits applied-object watches; empty means cluster-wide.
	WatchNamespaces []string

	applier   *Applier
	inventory Inventory
	watcher   *watcher

	mu    sync.Mutex
	state map[types.NamespacedName]*appState
	dirty sync.Map // NamespacedName → true: an applied object changed or vanished
}

type appState struct {
	generation int64
	revision   string
	commitTime time.Time
	checkedAt  time.Time
	objects    []*unstructured.Unstructured
	applied    bool // the current render has been applied
	appliedAt  time.Time
	errs       map[string]error  // per object, from the last apply
	driftAt    time.Time         // last drift check
	corrected  int64             // drift corrections so far (status may lag in the cache)
	drifted    map[string]string // found by the last drift check, until the next apply
}

// SetupWithManager registers the controller and the applied-object watches.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.SyncInterval == 0 {
		r.SyncInterval = 3 * time.Minute
	}
	if r.HealthInterval == 0 {
		r.HealthInterval = 5 * time.Second
	}
	r.applier = &Applier{Client: r.Client}
	r.inventory = Inventory{Client: r.Client}
	r.state = map[types.NamespacedName]*appState{}
	c, err := ctrl.NewControllerManagedBy(mgr).
		Named("agent").
		For(&flotillav1.Application{}).
		WithOptions(controller.Options{MaxConcurrentReconciles: 8}).
		Build(r)
	if err != nil {
		return err
	}
	r.watcher, err = newWatcher(mgr, c, r.Namespace, r.WatchNamespaces, func(key types.NamespacedName) { r.dirty.Store(key, true) })
	return err
}

// Reconcile makes the cluster match one Application.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	defer func() { syncDuration.Observe(time.Since(start).Seconds()) }()
	app := &flotillav1.Application{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.mu.Lock()
			delete(r.state, req.NamespacedName)
			r.mu.Unlock()
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, app)
	}
	if !controllerutil.ContainsFinalizer(app, flotillav1.FinalizerResources) {
		patch := client.MergeFrom(app.DeepCopy())
		controllerutil.AddFinalizer(app, flotillav1.FinalizerResources)
		if err := r.Client.Patch(ctx, app, patch); err != nil {
			return ctrl.Result{}, err
		}
	}

	st, out, err := r.source(ctx, app)
	if err != nil || out != nil {
		return r.report(ctx, app, out)
	}
	return r.sync(ctx, app, st)
}

// outcome is what a sync found, for the status.
type outcome struct {
	syncStatus flotillav1.SyncStatusCode
	synced     metav1.Condition
	resources  []flotillav1.ResourceStatus
	count      int
	syncErr    string
	corrected  int64 // total drift corrections
	applied    bool
	revision   string
	commitTime time.Time
	requeue    time.Duration
}

// source fetches and renders when the commit, the spec or a refresh asks
// for it; otherwise it reuses the last render.
func (r *Reconciler) source(ctx context.Context, app *flotillav1.Application) (*appState, *outcome, error) {
	key := client.ObjectKeyFromObject(app)
	r.mu.Lock()
	st := r.state[key]
	r.mu.Unlock()
	refresh := app.Annotations[flotillav1.AnnotationRefresh] != ""
	if st != nil && st.generation == app.Generation && !refresh && time.Since(st.checkedAt) < r.SyncInterval {
		return st, nil, nil
	}
	snap, err := r.Git.Snapshot(ctx, app.Spec.Source.RepoURL, app.Spec.Source.TargetRevision)
	if err != nil {
		return nil, &outcome{syncStatus: flotillav1.SyncStatusUnknown, syncErr: err.Error(), requeue: 30 * time.Second,
			synced: metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonFetchFailed,
				Message: err.Error() + "; applied objects are left as they are"}}, nil
	}
	if st != nil && st.generation == app.Generation && st.revision == snap.Revision {
		st.checkedAt = time.Now()
		return st, nil, nil
	}
	objs, err := Render(snap, app.Spec.Source, r.Render)
	if err != nil {
		return nil, &outcome{syncStatus: flotillav1.SyncStatusUnknown, syncErr: err.Error(), revision: snap.Revision, requeue: r.SyncInterval,
			synced: metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonRenderFailed,
				Message: err.Error() + "; applied objects are left as they are"}}, nil
	}
	st = &appState{generation: app.Generation, revision: snap.Revision, commitTime: snap.CommitTime, checkedAt: time.Now(), objects: objs}
	r.mu.Lock()
	r.state[key] = st
	r.mu.Unlock()
	return st, nil, nil
}

func (r *Reconciler) sync(ctx context.Context, app *flotillav1.Application, st *appState) (ctrl.Result, error) {
	logger := log.FromContext(ctx)
	key := client.ObjectKeyFromObject(app)
	out := &outcome{revision: st.revision, commitTime: st.commitTime, syncStatus: flotillav1.SyncStatusSynced}
	prev, err := r.inventory.Load(ctx, app)
	if err != nil {
		return ctrl.Result{}, err
	}
	objs := make([]*unstructured.Unstructured, len(st.objects))
	for i, o := range st.objects {
		objs[i] = o.DeepCopy()
	}
	defaultNS := app.Spec.Destination.Namespace
	if defaultNS == "" {
		defaultNS = "default"
	}
	if len(objs) == 0 && len(prev) > 0 {
		out.syncStatus = flotillav1.SyncStatusOutOfSync
		out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonEmptyRender,
			Message: fmt.Sprintf("%s renders no objects at %s: refusing to prune all %d applied objects; if you mean it, delete the Application", app.Spec.Source.Path, git.ShortSHA(st.revision), len(prev))}
		out.syncErr = out.synced.Message
		out.corrected = max(st.corrected, app.Status.DriftCorrections)
		return r.report(ctx, app, out)
	}

	auto := app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.Automated != nil
	selfHeal := auto && app.Spec.SyncPolicy.Automated.SelfHeal
	refresh := app.Annotations[flotillav1.AnnotationRefresh] != ""
	_, dirty := r.dirty.LoadAndDelete(key)
	prepErrs := r.applier.Prepare(objs, app.Name, defaultNS)

	// Objects the apiserver rejected are retried now and then, not on every event.
	retry := auto && len(st.errs) > 0 && time.Since(st.appliedAt) > 10*r.HealthInterval
	apply := (auto && !st.applied) || refresh || retry
	drifted := st.drifted
	if drifted == nil {
		drifted = map[string]string{}
	}
	// Drift is checked when a watched object changed, and on every sync
	// interval as a safety net for missed events.
	if periodic := time.Since(st.driftAt) > r.SyncInterval; !apply && (dirty || !st.applied || periodic) {
		st.driftAt = time.Now()
		var ok []*unstructured.Unstructured
		for _, o := range objs {
			if prepErrs[o] == nil {
				ok = append(ok, o)
			}
		}
		drifted, err = r.applier.Drift(ctx, ok)
		st.drifted = drifted
		logger.V(1).Info("Drift check", "dirty", dirty, "drifted", len(drifted), "selfHeal", selfHeal)
		if err != nil {
			return ctrl.Result{}, err
		}
		if len(drifted) > 0 && (selfHeal || !st.applied && auto) {
			apply = true
			if st.applied {
				st.corrected = max(st.corrected, app.Status.DriftCorrections) + int64(len(drifted))
				for k, manager := range drifted {
					logger.Info("Correcting drift", "object", k, "changedBy", manager)
					driftCorrections.WithLabelValues(app.Name).Inc()
					if r.Recorder != nil {
						r.Recorder.Eventf(app, nil, corev1.EventTypeNormal, flotillav1.ReasonDriftCorrected, "SelfHeal",
							"%s drifted from Git (changed by %s); re-applied", strings.ReplaceAll(k, "/", " "), manager)
					}
				}
			}
		}
	}

	var results []Result
	if apply {
		if hasOption(app, "CreateNamespace=true") && app.Spec.Destination.Namespace != "" {
			if err := r.ensureNamespace(ctx, app.Spec.Destination.Namespace); err != nil {
				return ctrl.Result{}, err
			}
		}
		results = r.applier.Apply(ctx, objs, app.Name, defaultNS)
		out.applied = true
		st.applied, st.appliedAt, st.errs, st.driftAt, st.drifted = true, time.Now(), map[string]error{}, time.Now(), nil
		for _, res := range results {
			if res.Err != nil {
				st.errs[res.Ref.Key()] = res.Err
			}
		}
	} else {
		for _, o := range objs {
			res := Result{Ref: refOf(o), Err: prepErrs[o]}
			if res.Err == nil {
				live := &unstructured.Unstructured{}
				live.SetGroupVersionKind(o.GroupVersionKind())
				if err := r.Client.Get(ctx, client.ObjectKeyFromObject(o), live); err == nil {
					res.Live = live
					res.Ref.UID = string(live.GetUID())
				} else if prevErr := st.errs[res.Ref.Key()]; prevErr != nil {
					res.Err = prevErr
				}
			}
			results = append(results, res)
		}
	}
	r.watcher.ensure(ctx, results)

	// Inventory and prune.
	current := map[string]bool{}
	var next []Ref
	for _, res := range results {
		current[res.Ref.Key()] = true
		if res.Live != nil {
			next = append(next, res.Ref)
		}
	}
	inNext := map[string]bool{}
	for _, ref := range next {
		inNext[ref.Key()] = true
	}
	var gone []Ref
	for _, ref := range prev {
		switch {
		case !current[ref.Key()]:
			gone = append(gone, ref)
		case !inNext[ref.Key()]:
			next = append(next, ref) // still wanted but not applied now: keep tracking it
		}
	}
	prune := auto && app.Spec.SyncPolicy.Automated.Prune
	if len(gone) > 0 {
		if prune && apply {
			deleted, kept, perr := Prune(ctx, r.Client, gone)
			next = append(next, kept...)
			for _, d := range deleted {
				logger.Info("Pruned", "object", d.String())
			}
			if perr != nil {
				out.syncErr = perr.Error()
			}
		} else {
			next = append(next, gone...)
			out.syncStatus = flotillav1.SyncStatusOutOfSync
		}
	}
	if apply || len(prev) == 0 {
		if err := r.inventory.Save(ctx, app, next); err != nil {
			return ctrl.Result{}, err
		}
	}

	// Per-object status and health.
	var failed []string
	for _, res := range results {
		rs := flotillav1.ResourceStatus{Group: res.Ref.Group, Version: res.Ref.Version, Kind: res.Ref.Kind, Namespace: res.Ref.Namespace, Name: res.Ref.Name, Sync: flotillav1.SyncStatusSynced}
		switch {
		case res.Err != nil:
			rs.Health, rs.Sync, rs.Message = flotillav1.HealthDegraded, flotillav1.SyncStatusOutOfSync, kube.Truncate(res.Err.Error(), 1000)
			failed = append(failed, res.Ref.String()+": "+res.Err.Error())
		case res.Live == nil:
			rs.Health, rs.Sync, rs.Message = flotillav1.HealthMissing, flotillav1.SyncStatusOutOfSync, "not found"
		default:
			rs.Health, rs.Message = Health(res.Live)
			rs.Message = kube.Truncate(rs.Message, 1000)
		}
		if m, ok := drifted[res.Ref.Key()]; ok && !apply {
			rs.Sync, rs.Message = flotillav1.SyncStatusOutOfSync, "drifted from Git (changed by "+m+")"
		}
		if rs.Sync != flotillav1.SyncStatusSynced {
			out.syncStatus = flotillav1.SyncStatusOutOfSync
		}
		out.resources = append(out.resources, rs)
	}
	out.count = len(out.resources)
	switch {
	case len(failed) > 0:
		out.syncErr = fmt.Sprintf("%d of %d objects were not applied: %s", len(failed), len(results), kube.Truncate(strings.Join(failed, "; "), 3000))
		out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonApplyFailed, Message: out.syncErr}
	case out.syncStatus == flotillav1.SyncStatusOutOfSync:
		out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonOutOfSync, Message: outOfSyncMessage(auto, selfHeal, prune, len(gone), len(drifted))}
	default:
		out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonSynced, Message: fmt.Sprintf("%d objects at %s", len(results), git.ShortSHA(st.revision))}
	}
	if refresh {
		patch := client.MergeFrom(app.DeepCopy())
		delete(app.Annotations, flotillav1.AnnotationRefresh)
		if err := r.Client.Patch(ctx, app, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	out.corrected = max(st.corrected, app.Status.DriftCorrections)
	return r.report(ctx, app, out)
}

func outOfSyncMessage(auto, selfHeal, prune bool, gone, drifted int) string {
	var parts []string
	if gone > 0 && !prune {
		parts = append(parts, fmt.Sprintf("%d objects left Git but prune is off", gone))
	}
	if drifted > 0 && !selfHeal {
		parts = append(parts, fmt.Sprintf("%d objects drifted and selfHeal is off", drifted))
	}
	if !auto {
		parts = append(parts, "automated sync is off: annotate the Application with flotilla.dev/refresh to sync")
	}
	return strings.Join(parts, "; ")
}

// report writes the Application's status.
func (r *Reconciler) report(ctx context.Context, app *flotillav1.Application, out *outcome) (ctrl.Result, error) {
	s := app.Status.DeepCopy()
	s.Sync.Status = out.syncStatus
	if out.revision != "" {
		s.Sync.Revision = out.revision
	}
	if !out.commitTime.IsZero() {
		t := metav1.NewTime(out.commitTime)
		s.Sync.CommitTime = &t
	}
	s.LastSyncError = kube.Truncate(out.syncErr, 4000)
	if out.applied {
		now := metav1.Now()
		s.LastSyncTime = &now
	}
	s.DriftCorrections = max(s.DriftCorrections, out.corrected)
	healthy := metav1.Condition{Type: flotillav1.ConditionHealthy}
	if out.resources != nil || out.count == 0 && out.synced.Reason == flotillav1.ReasonSynced {
		h := Worst(out.resources)
		s.Health = h
		s.ResourceCount = int32(out.count)
		if len(out.resources) > MaxResources {
			out.resources = out.resources[:MaxResources]
		}
		s.Resources = out.resources
	}
	healthy.Reason = string(s.Health.Status)
	if healthy.Reason == "" {
		healthy.Reason = string(flotillav1.HealthUnknown)
	}
	healthy.Message = s.Health.Message
	healthy.Status = metav1.ConditionFalse
	if s.Health.Status == flotillav1.HealthHealthy {
		healthy.Status = metav1.ConditionTrue
	} else if s.Health.Status == "" || s.Health.Status == flotillav1.HealthUnknown {
		healthy.Status = metav1.ConditionUnknown
	}
	if out.synced.Status == metav1.ConditionTrue || out.applied {
		s.ObservedGeneration = app.Generation
	}
	st, err := runtime.DefaultUnstructuredConverter.ToUnstructured(s)
	if err != nil {
		return ctrl.Result{}, err
	}
	conds := append([]metav1.Condition{out.synced, healthy}, kube.Summarize(app.Generation, s.ObservedGeneration, kube.ApplicationStalled, out.synced, healthy)...)
	st["conditions"] = kube.Conditions(app.Status.Conditions, app.Generation, conds...)
	if err := kube.ApplyStatus(ctx, r.Client, app, "Application", flotillav1.FieldManagerAgentStatus, st); err != nil {
		return ctrl.Result{}, err
	}
	if old := apimeta.FindStatusCondition(app.Status.Conditions, flotillav1.ConditionSynced); r.Recorder != nil && out.synced.Status == metav1.ConditionFalse && (old == nil || old.Reason != out.synced.Reason) {
		r.Recorder.Eventf(app, nil, corev1.EventTypeWarning, out.synced.Reason, "Sync", "%s", kube.Truncate(out.synced.Message, 1000))
	}
	requeue := out.requeue
	if requeue == 0 {
		requeue = r.SyncInterval
		if s.Health.Status == flotillav1.HealthProgressing || s.Health.Status == flotillav1.HealthUnknown || s.Health.Status == flotillav1.HealthMissing {
			requeue = r.HealthInterval
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

func (r *Reconciler) finalize(ctx context.Context, app *flotillav1.Application) error {
	if !controllerutil.ContainsFinalizer(app, flotillav1.FinalizerResources) {
		return nil
	}
	preserve := app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.PreserveResourcesOnDeletion
	if !preserve {
		refs, err := r.inventory.Load(ctx, app)
		if err != nil {
			return err
		}
		if _, kept, err := Prune(ctx, r.Client, refs); err != nil || len(kept) > 0 {
			return fmt.Errorf("delete the Application's objects (%d left): %w", len(kept), err)
		}
	}
	if err := r.inventory.Delete(ctx, app); err != nil {
		return err
	}
	patch := client.MergeFrom(app.DeepCopy())
	controllerutil.RemoveFinalizer(app, flotillav1.FinalizerResources)
	return client.IgnoreNotFound(r.Client.Patch(ctx, app, patch))
}

func (r *Reconciler) ensureNamespace(ctx context.Context, name string) error {
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: name}}
	if err := kube.Apply(ctx, r.Client, ns, flotillav1.FieldManagerAgent); err != nil {
		return fmt.Errorf("create namespace %s (CreateNamespace=true): %w", name, err)
	}
	return nil
}

func hasOption(app *flotillav1.Application, opt string) bool {
	if app.Spec.SyncPolicy == nil {
		return false
	}
	for _, o := range app.Spec.SyncPolicy.SyncOptions {
		if strings.EqualFold(o, opt) {
			return true
		}
	}
	return false
}
