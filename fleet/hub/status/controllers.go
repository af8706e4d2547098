package status

import (
	"context"
	"slices"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/metrics"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/project"
)

// IndexByCluster adds flotillav1.IndexApplicationCluster; call it once per manager before setting
// up the controllers that use it.
func IndexByCluster(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &flotillav1.Application{}, flotillav1.IndexApplicationCluster, func(o client.Object) []string {
		a := o.(*flotillav1.Application)
		if flotillav1.IsSpokeCopy(a) {
			return nil // a copy delivered to the hub itself (in-cluster) is not one of the hub's Applications
		}
		return []string{a.Spec.Destination.Cluster}
	})
}

// SetReconciler aggregates Application status into ApplicationSet status.
type SetReconciler struct {
	Client client.Client
	// Namespaces are globs of the namespaces whose sets the hub serves
	// (empty: all); the others are left alone.
	Namespaces []string

	// MinInterval between two status writes of one set (default 1s): while
	// a rollout changes Applications hundreds of times a second, the set's
	// status is rewritten at most this often.
	MinInterval time.Duration

	mu        sync.Mutex
	firstSeen map[types.NamespacedName]map[string]time.Time // set → revision → when first seen (zero: observed)
	writes    writeLimiter
}

// SetupWithManager registers the controller.
func (r *SetReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.firstSeen = map[types.NamespacedName]map[string]time.Time{}
	r.writes = newWriteLimiter(r.MinInterval)
	return ctrl.NewControllerManagedBy(mgr).
		Named("applicationset-status").
		// The Ready summary reads the set controller's conditions too.
		For(&flotillav1.ApplicationSet{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, setConditionsChanged))).
		Watches(&flotillav1.Application{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			if set := o.GetLabels()[flotillav1.LabelApplicationSet]; set != "" {
				return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: o.GetNamespace(), Name: set}}}
			}
			return nil
		})).
		Complete(r)
}

// Reconcile writes one set's summary, revisions, notHealthy and Healthy.
func (r *SetReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	defer func() {
		metrics.ReconcileDuration.WithLabelValues("applicationset-status").Observe(time.Since(start).Seconds())
	}()
	set := &flotillav1.ApplicationSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, set); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if len(r.Namespaces) > 0 && !project.Glob(r.Namespaces, set.Namespace) {
		return ctrl.Result{}, nil
	}
	if wait := r.writes.wait(req.NamespacedName); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var list flotillav1.ApplicationList
	if err := r.Client.List(ctx, &list, client.InNamespace(set.Namespace), client.MatchingLabels{flotillav1.LabelApplicationSet: set.Name},
		client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	agg := Aggregate(slices.DeleteFunc(list.Items, func(a flotillav1.Application) bool { return flotillav1.IsSpokeCopy(&a) }))
	r.observeLeadTime(set, list.Items, agg)
	summary := setSummary(set, agg.Healthy)
	if sameSetStatus(set, agg) && !kube.SummaryChanged(set.Status.Conditions, summary) {
		return ctrl.Result{}, nil
	}
	st := map[string]any{
		"conditions": kube.Conditions(set.Status.Conditions, set.Generation, append([]metav1.Condition{agg.Healthy}, summary...)...),
	}
	for k, v := range map[string]any{"summary": agg.Summary, "revisions": agg.Revisions, "notHealthy": agg.NotHealthy} {
		u, err := toUnstructured(v)
		if err != nil {
			return ctrl.Result{}, err
		}
		st[k] = u
	}
	if err := kube.ApplyStatus(ctx, r.Client, set, "ApplicationSet", flotillav1.FieldManagerHubStatus, st); err != nil {
		return ctrl.Result{}, err
	}
	r.writes.wrote(req.NamespacedName)
	return ctrl.Result{}, nil
}

// writeLimiter spaces one object's status writes by a minimum interval.
type writeLimiter struct {
	interval time.Duration
	mu       sync.Mutex
	last     map[types.NamespacedName]time.Time
}

func newWriteLimiter(interval time.Duration) writeLimiter {
	if interval == 0 {
		interval = time.Second
	}
	return writeLimiter{interval: interval, last: map[types.NamespacedName]time.Time{}}
}

// wait is how long key must wait before its next write (≤ 0: now).
func (l *writeLimiter) wait(key types.NamespacedName) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.interval - time.Since(l.last[key])
}

func (l *writeLimiter) wrote(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.last[key] = time.Now()
}

func (l *writeLimiter) forget(key types.NamespacedName) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.last, key)
}

func (l *writeLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.last)
}

// setSummary is the set's Ready (with Reconciling or Stalled): generated,
// written and every Application Healthy at the set's generation. A set
// that generates no Application is Ready (there is nothing to wait for).
// Generation errors and Degraded Applications stall it.
func setSummary(set *flotillav1.ApplicationSet, healthy metav1.Condition) []metav1.Condition {
	if healthy.Reason == flotillav1.ReasonNoApplications {
		healthy.Status = metav1.ConditionTrue
	}
	parts := []metav1.Condition{kube.Part(set.Status.Conditions, flotillav1.ConditionParametersGenerated),
		kube.Part(set.Status.Conditions, flotillav1.ConditionResourcesUpToDate), healthy}
	if set.Status.Rollout != nil {
		// A halted or rolled-back rollout needs a person (or a new commit).
		parts = append(parts, kube.Part(set.Status.Conditions, flotillav1.ConditionRolledOut))
	}
	return kube.Summarize(set.Generation, set.Status.ObservedGeneration, func(c metav1.Condition) bool {
		return c.Type == flotillav1.ConditionParametersGenerated || c.Reason == flotillav1.ReasonDegraded || c.Reason == flotillav1.ReasonDeletionsHeld || c.Reason == flotillav1.ReasonProjectViolation ||
			c.Reason == string(flotillav1.RolloutHalted) || c.Reason == string(flotillav1.RolloutRolledBack)
	}, parts...)
}

// setConditionsChanged passes set updates that change what setSummary
// reads from the set controller: observedGeneration, ParametersGenerated
// and ResourcesUpToDate.
var setConditionsChanged = predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
	a, b := e.ObjectOld.(*flotillav1.ApplicationSet), e.ObjectNew.(*flotillav1.ApplicationSet)
	if a.Status.ObservedGeneration != b.Status.ObservedGeneration {
		return true
	}
	for _, t := range []string{flotillav1.ConditionParametersGenerated, flotillav1.ConditionResourcesUpToDate, flotillav1.ConditionRolledOut} {
		x, y := kube.Part(a.Status.Conditions, t), kube.Part(b.Status.Conditions, t)
		if x.Status != y.Status || x.Reason != y.Reason || x.Message != y.Message {
			return true
		}
	}
	return false
}}

// sameSetStatus reports whether the set's status already says agg.
func sameSetStatus(set *flotillav1.ApplicationSet, agg SetStatus) bool {
	st := set.Status
	old := apimeta.FindStatusCondition(st.Conditions, flotillav1.ConditionHealthy)
	return old != nil && old.ObservedGeneration == set.Generation && kube.HasCondition(st.Conditions, agg.Healthy) && st.Summary == agg.Summary &&
		equality.Semantic.DeepEqual(emptyNil(st.Revisions), emptyNil(agg.Revisions)) &&
		equality.Semantic.DeepEqual(emptyNil(st.NotHealthy), emptyNil(agg.NotHealthy))
}

func emptyNil[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// observeLeadTime records, once per revision, the time from the revision's
// commit (its author time, as agents report it; else when the hub first saw
// it) to every Application of the set Healthy at it.
func (r *SetReconciler) observeLeadTime(set *flotillav1.ApplicationSet, apps []flotillav1.Application, agg SetStatus) {
	r.mu.Lock()
	defer r.mu.Unlock()
	setKey := client.ObjectKeyFromObject(set)
	// Only the set's current revisions are remembered: the map stays as
	// small as the set's status.
	prev := r.firstSeen[setKey]
	seenNow := make(map[string]time.Time, len(agg.Revisions))
	r.firstSeen[setKey] = seenNow
	for _, rc := range agg.Revisions {
		key := rc.Revision
		seen, ok := prev[key]
		if !ok {
			seen = time.Now()
		}
		seenNow[key] = seen
		if seen.IsZero() {
			continue // already observed
		}
		if rc.Applications != agg.Summary.Applications || rc.Healthy != rc.Applications {
			continue
		}
		start := seen
		for i := range apps {
			if ct := apps[i].Status.Sync.CommitTime; apps[i].Status.Sync.Revision == rc.Revision && ct != nil && ct.Time.Before(start) {
				start = ct.Time
			}
		}
		metrics.LeadTime.WithLabelValues(set.Namespace, set.Name).Observe(time.Since(start).Seconds())
		seenNow[key] = time.Time{}
	}
}

// forget drops what the reconciler keeps for a deleted set, and its series.
func (r *SetReconciler) forget(key types.NamespacedName) {
	r.writes.forget(key)
	r.mu.Lock()
	delete(r.firstSeen, key)
	r.mu.Unlock()
	metrics.LeadTime.DeleteLabelValues(key.Namespace, key.Name)
}

// Tracked is how many sets the reconciler keeps state for (tests).
func (r *SetReconciler) Tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.firstSeen) + r.writes.size()
}

// ClusterReconciler aggregates Application status into MemberCluster status.
type ClusterReconciler struct {
	Client client.Client
	// MinInterval between two status writes of one cluster (default 1s).
	MinInterval time.Duration

	writes writeLimiter
}

// Tracked is how many clusters the reconciler keeps state for (tests).
func (r *ClusterReconciler) Tracked() int { return r.writes.size() }

// SetupWithManager registers the controller.
func (r *ClusterReconciler) SetupWithManager(mgr ctrl.Manager) error {
	r.writes = newWriteLimiter(r.MinInterval)
	return ctrl.NewControllerManagedBy(mgr).
		Named("membercluster-status").
		For(&flotillav1.MemberCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&flotillav1.Application{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
			return []reconcile.Request{{NamespacedName: types.NamespacedName{Name: o.(*flotillav1.Application).Spec.Destination.Cluster}}}
		})).
		Complete(r)
}

// Reconcile writes one MemberCluster's status.applications.
func (r *ClusterReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &flotillav1.MemberCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, mc); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ApplicationsByHealth.DeletePartialMatch(map[string]string{"cluster": req.Name})
			metrics.DriftCorrections.DeleteLabelValues(req.Name)
			metrics.DeliveryLatency.DeleteLabelValues(req.Name)
			r.writes.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if wait := r.writes.wait(req.NamespacedName); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	var list flotillav1.ApplicationList
	if err := r.Client.List(ctx, &list, client.MatchingFields{flotillav1.IndexApplicationCluster: mc.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, err
	}
	counts := Count(list.Items)
	var drift int64
	for i := range list.Items {
		drift += list.Items[i].Status.DriftCorrections
	}
	for health, n := range map[string]int32{"Healthy": counts.Healthy, "Progressing": counts.Progressing, "Degraded": counts.Degraded,
		"Suspended": counts.Suspended, "Missing": counts.Missing, "Unknown": counts.Unknown} {
		metrics.ApplicationsByHealth.WithLabelValues(mc.Name, health).Set(float64(n))
	}
	metrics.DriftCorrections.WithLabelValues(mc.Name).Set(float64(drift))
	if counts == mc.Status.Applications {
		return ctrl.Result{}, nil
	}
	u, err := toUnstructured(counts)
	if err != nil {
		return ctrl.Result{}, err
	}
	if err := kube.ApplyStatus(ctx, r.Client, mc, "MemberCluster", flotillav1.FieldManagerHubStatus, map[string]any{"applications": u}); err != nil {
		return ctrl.Result{}, err
	}
	r.writes.wrote(req.NamespacedName)
	return ctrl.Result{}, nil
}

func toUnstructured(v any) (any, error) {
	switch t := v.(type) {
	case []flotillav1.RevisionCount:
		return toUnstructuredList(t)
	case []flotillav1.NotHealthyApplication:
		return toUnstructuredList(t)
	case flotillav1.ApplicationSetSummary:
		return runtime.DefaultUnstructuredConverter.ToUnstructured(&t)
	case flotillav1.ApplicationCounts:
		return runtime.DefaultUnstructuredConverter.ToUnstructured(&t)
	}
	return nil, nil
}

func toUnstructuredList[T any](items []T) ([]any, error) {
	out := make([]any, 0, len(items))
	for i := range items {
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&items[i])
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
