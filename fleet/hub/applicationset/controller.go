// Package appset is the hub's ApplicationSet controller: generate → render
// → validate → create, update or delete the set's hub Applications with
// server-side apply, per the set's applicationsSync policy. Any generator
// or template error means no write at all.
package applicationset

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/metrics"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/project"
)

// DefaultGitPollInterval is how often a set with git generators re-reads Git.
const DefaultGitPollInterval = 3 * time.Minute

// Reconciler reconciles ApplicationSets.
type Reconciler struct {
	Client client.Client
	// APIReader reads around the cache: before creating Applications the
	// set is re-read live, so a set already deleted (the cache lags) never
	// gets its Applications back.
	APIReader client.Reader
	Scheme    *runtime.Scheme
	Engine    *generators.Engine
	Recorder  events.EventRecorder
	// GitPollInterval is the default requeue for sets with git generators.
	GitPollInterval time.Duration
	// Writers bounds parallel Application writes per set (default 16).
	Writers int
	// Revisions pins Git-sourced Applications to commits (nil: no pinning,
	// agents resolve revisions themselves).
	Revisions *Revisions
	// Projects reads the Projects that bound each Application (nil: no
	// project checks).
	Projects project.Lookup
	// Namespaces are globs of the namespaces whose ApplicationSets are
	// reconciled (empty: every namespace); sets elsewhere are ignored.
	Namespaces []string

	mu sync.Mutex
	// selected remembers which clusters each set's last expansion used, so
	// a MemberCluster change re-queues only the sets that select it now or
	// selected it before.
	selected map[types.NamespacedName]map[string]bool
	// refreshed is the last refresh request handled per set.
	refreshed map[string]string
	// rolling marks the sets with a rolling update: their Applications'
	// status changes wake them.
	rolling map[types.NamespacedName]bool
	// rollouts is each rolling set's rollout as this controller last wrote
	// it: the cache may still hold an older status (see rememberRollout).
	rollouts map[types.NamespacedName]*rolloutMemory
}

// SetupWithManager registers the controller and its precise watches.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.GitPollInterval == 0 {
		r.GitPollInterval = DefaultGitPollInterval
	}
	if r.Writers == 0 {
		r.Writers = 16
	}
	r.selected = map[types.NamespacedName]map[string]bool{}
	r.rolling = map[types.NamespacedName]bool{}
	r.rollouts = map[types.NamespacedName]*rolloutMemory{}
	return ctrl.NewControllerManagedBy(mgr).
		Named("applicationset").
		For(&flotillav1.ApplicationSet{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A generated Application deleted or edited by someone else is put back.
		Owns(&flotillav1.Application{}, builder.WithPredicates(predicate.Funcs{
			CreateFunc: func(event.CreateEvent) bool { return false },
			UpdateFunc: func(e event.UpdateEvent) bool {
				return e.ObjectOld.GetGeneration() != e.ObjectNew.GetGeneration() ||
					(r.rollingSet(e.ObjectNew.GetNamespace(), e.ObjectNew.GetLabels()) &&
						rolloutStatusChanged(e.ObjectOld.(*flotillav1.Application), e.ObjectNew.(*flotillav1.Application)))
			},
			DeleteFunc:  func(event.DeleteEvent) bool { return true },
			GenericFunc: func(event.GenericEvent) bool { return false },
		})).
		Watches(&flotillav1.MemberCluster{}, handler.Funcs{
			CreateFunc: func(ctx context.Context, e event.CreateEvent, q workqueueTyped) {
				r.enqueueForCluster(ctx, nil, e.Object, q)
			},
			UpdateFunc: func(ctx context.Context, e event.UpdateEvent, q workqueueTyped) {
				if !equality.Semantic.DeepEqual(e.ObjectOld.GetLabels(), e.ObjectNew.GetLabels()) ||
					!equality.Semantic.DeepEqual(e.ObjectOld.GetAnnotations(), e.ObjectNew.GetAnnotations()) ||
					e.ObjectOld.(*flotillav1.MemberCluster).Status.Server != e.ObjectNew.(*flotillav1.MemberCluster).Status.Server {
					r.enqueueForCluster(ctx, e.ObjectOld, e.ObjectNew, q)
				}
			},
			DeleteFunc: func(ctx context.Context, e event.DeleteEvent, q workqueueTyped) {
				r.enqueueForCluster(ctx, e.Object, nil, q)
			},
		}).
		Watches(&flotillav1.Project{}, handler.EnqueueRequestsFromMapFunc(r.enqueueForProject)).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(r)
}

// Reconcile expands one ApplicationSet and converges its Applications.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	defer func() {
		metrics.ReconcileDuration.WithLabelValues("applicationset").Observe(time.Since(start).Seconds())
	}()

	set := &flotillav1.ApplicationSet{}
	if err := r.Client.Get(ctx, req.NamespacedName, set); err != nil {
		if apierrors.IsNotFound(err) {
			r.forget(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !set.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // Applications go with their owner; delivery's finalizers clean spokes
	}
	if !r.namespaceAllowed(set.Namespace) {
		log.FromContext(ctx).V(1).Info("ApplicationSet ignored: its namespace is not one of --application-set-namespaces")
		return ctrl.Result{}, nil
	}

	desired, err := r.Engine.Applications(ctx, set)
	if err != nil {
		return r.generationFailed(ctx, set, err)
	}
	metrics.GeneratedApplications.WithLabelValues(set.Namespace, set.Name).Set(float64(len(desired)))
	passRequests(set, desired)
	r.remember(req.NamespacedName, desired)
	if err := r.checkProjects(ctx, set, desired); err != nil {
		var refusal *projectRefusal
		if errors.As(err, &refusal) {
			return r.projectRefused(ctx, set, len(desired), err)
		}
		return ctrl.Result{}, err
	}

	existing, err := r.owned(ctx, set)
	if err != nil {
		return ctrl.Result{}, err
	}
	var rolled *rolloutPlan
	if r.Revisions != nil {
		resolved, err := r.pin(ctx, desired, existing, r.refreshRequested(set))
		if err != nil {
			r.event(set, corev1.EventTypeWarning, flotillav1.ReasonRevisionUnresolved, err.Error()+"; Applications keep the commit they were pinned to")
		}
		if rolled, err = r.roll(ctx, set, desired, existing, resolved); err != nil {
			return ctrl.Result{}, err
		}
	} else {
		set.Status.Rollout = nil
	}
	plan := PlanWrites(set, desired, existing, MemberClusterGone(ctx, r.Client))
	if len(plan.Create) > 0 && r.APIReader != nil {
		live := &flotillav1.ApplicationSet{}
		if err := r.APIReader.Get(ctx, req.NamespacedName, live); apierrors.IsNotFound(err) || (err == nil && (!live.DeletionTimestamp.IsZero() || live.UID != set.UID)) {
			return ctrl.Result{}, nil // being deleted: create nothing
		} else if err != nil {
			return ctrl.Result{}, err
		}
	}
	writeErr := r.write(ctx, plan)
	if writeErr == nil && rolled != nil {
		// The Applications now say what this rollout decided: it stands,
		// whether or not its status write below lands first.
		r.rememberRollout(set, rolled)
	}
	spent := []string{}
	if writeErr == nil && len(plan.Delete) > 0 && set.Annotations[flotillav1.AnnotationAllowDeletes] != "" {
		// The confirmation is spent: the next mass deletion asks again.
		spent = append(spent, flotillav1.AnnotationAllowDeletes)
	}
	if writeErr == nil && set.Annotations[flotillav1.AnnotationRolloutAction] != "" {
		spent = append(spent, flotillav1.AnnotationRolloutAction) // handled (or refused, with an Event)
	}
	if len(spent) > 0 {
		rollout := set.Status.Rollout // this reconcile's, which the patch's response would replace with the stored one
		patch := client.MergeFrom(set.DeepCopy())
		for _, k := range spent {
			delete(set.Annotations, k)
		}
		if err := r.Client.Patch(ctx, set, patch); err != nil {
			return ctrl.Result{}, err
		}
		set.Status.Rollout = rollout
	}
	if writeErr == nil {
		r.rolloutDone(set, rolled)
	}
	res, err := r.report(ctx, set, len(desired), plan, writeErr)
	if rolled != nil && rolled.requeue > 0 && (res.RequeueAfter == 0 || rolled.requeue < res.RequeueAfter) {
		res.RequeueAfter = rolled.requeue
	}
	return res, err
}

// passRequests hands a refresh or sync requested on the set to each of its
// Applications (which hand it to their agents); the expansion that just
// ran re-read the set's Git sources already.
func passRequests(set *flotillav1.ApplicationSet, apps []*flotillav1.Application) {
	for _, k := range []string{flotillav1.AnnotationRefresh, flotillav1.AnnotationSync} {
		v := set.Annotations[k]
		if v == "" {
			continue
		}
		for _, a := range apps {
			if a.Annotations == nil {
				a.Annotations = map[string]string{}
			}
			a.Annotations[k] = v
		}
	}
}

// report writes the set's conditions and Events for a reconcile that
// generated its Applications: ResourcesUpToDate says what the plan did,
// why writes failed, or why deletions wait for confirmation.
func (r *Reconciler) report(ctx context.Context, set *flotillav1.ApplicationSet, generated int, plan *Plan, writeErr error) (ctrl.Result, error) {
	genCond := metav1.Condition{Type: flotillav1.ConditionParametersGenerated, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonGenerated,
		Message: fmt.Sprintf("%d parameter sets", generated)}
	upCond := metav1.Condition{Type: flotillav1.ConditionResourcesUpToDate, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonUpToDate,
		Message: plan.Summary()}
	switch {
	case writeErr != nil:
		upCond.Status, upCond.Reason, upCond.Message = metav1.ConditionFalse, flotillav1.ReasonWriteFailed, writeErr.Error()
		r.event(set, corev1.EventTypeWarning, flotillav1.ReasonWriteFailed, writeErr.Error())
	case plan.DeletionsHeld:
		upCond.Status, upCond.Reason = metav1.ConditionFalse, flotillav1.ReasonDeletionsHeld
		if old := apimeta.FindStatusCondition(set.Status.Conditions, flotillav1.ConditionResourcesUpToDate); old == nil || old.Reason != flotillav1.ReasonDeletionsHeld {
			r.event(set, corev1.EventTypeWarning, flotillav1.ReasonDeletionsHeld, plan.HeldMessage())
		}
	case plan.Changes() > 0:
		r.event(set, corev1.EventTypeNormal, flotillav1.ReasonUpdated, plan.Summary())
	}
	if err := r.applyConditions(ctx, set, writeErr == nil, genCond, upCond); err != nil {
		return ctrl.Result{}, err
	}
	if writeErr != nil {
		return ctrl.Result{}, writeErr
	}
	if interval := r.pollInterval(set); interval > 0 {
		return ctrl.Result{RequeueAfter: interval}, nil
	}
	return ctrl.Result{}, nil
}

// generationFailed reports a generator or template error and writes
// nothing else: the last good Applications stay as they are.
func (r *Reconciler) generationFailed(ctx context.Context, set *flotillav1.ApplicationSet, err error) (ctrl.Result, error) {
	// Nothing is written: the last good Applications stay as they are.
	log.FromContext(ctx).Info("Generation failed; leaving Applications untouched", "error", err.Error())
	if old := apimeta.FindStatusCondition(set.Status.Conditions, flotillav1.ConditionParametersGenerated); old == nil || old.Status != metav1.ConditionFalse || !strings.HasPrefix(old.Message, err.Error()) {
		r.event(set, corev1.EventTypeWarning, flotillav1.ReasonGenerationFailed, err.Error())
	}
	// A template error is this generation's final word (kstatus: Stalled
	// at the observed generation); anything else may pass and is retried.
	terminal := errors.Is(err, generators.ErrTemplate)
	if serr := r.applyConditions(ctx, set, terminal, metav1.Condition{
		Type: flotillav1.ConditionParametersGenerated, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonGenerationFailed,
		Message: err.Error() + "; existing Applications are left unchanged",
	}); serr != nil {
		return ctrl.Result{}, serr
	}
	if terminal {
		// The user's template is wrong: retrying cannot help; a change to
		// the set re-queues it.
		return ctrl.Result{}, reconcile.TerminalError(err)
	}
	return ctrl.Result{}, err // maybe transient (Git, the cluster list): retried with backoff
}

func (r *Reconciler) owned(ctx context.Context, set *flotillav1.ApplicationSet) (map[string]*flotillav1.Application, error) {
	var list flotillav1.ApplicationList
	if err := r.Client.List(ctx, &list, client.InNamespace(set.Namespace), client.MatchingLabels{flotillav1.LabelApplicationSet: set.Name}); err != nil {
		return nil, fmt.Errorf("list Applications of %s: %w", set.Name, err)
	}
	return Owned(set, list.Items), nil
}

// write runs the plan with bounded parallelism and reports every failure.
func (r *Reconciler) write(ctx context.Context, p *Plan) error {
	type op struct {
		app    *flotillav1.Application
		delete bool
	}
	ops := make(chan op)
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	for range r.Writers {
		wg.Go(func() {
			for o := range ops {
				var err error
				if o.delete {
					err = client.IgnoreNotFound(r.Client.Delete(ctx, o.app, client.Preconditions{UID: &o.app.UID}))
				} else {
					err = r.apply(ctx, o.app)
				}
				if err != nil {
					mu.Lock()
					errs = append(errs, fmt.Errorf("%s: %w", o.app.Name, err))
					mu.Unlock()
				}
			}
		})
	}
	for _, a := range p.Create {
		// Created with delivery's finalizer: one hub write less per new
		// Application (delivery would otherwise patch it in).
		a = a.DeepCopy()
		controllerutil.AddFinalizer(a, flotillav1.FinalizerDelivery)
		ops <- op{app: a}
	}
	for _, a := range p.Update {
		// Every apply carries the finalizer: server-side apply would
		// otherwise remove it (the hub's manager owns it since the create).
		a = a.DeepCopy()
		controllerutil.AddFinalizer(a, flotillav1.FinalizerDelivery)
		ops <- op{app: a}
	}
	for _, a := range p.Delete {
		ops <- op{app: a, delete: true}
	}
	close(ops)
	wg.Wait()
	if len(errs) == 0 {
		return nil
	}
	sort.Slice(errs, func(i, j int) bool { return errs[i].Error() < errs[j].Error() })
	if len(errs) > 5 {
		errs = append(errs[:5], fmt.Errorf("and %d more", len(errs)-5))
	}
	return fmt.Errorf("write Applications: %w", errors.Join(errs...))
}

// apply server-side-applies an Application's metadata and spec.
func (r *Reconciler) apply(ctx context.Context, app *flotillav1.Application) error {
	return kube.Apply(ctx, r.Client, app, flotillav1.FieldManagerHub)
}

func (r *Reconciler) applyConditions(ctx context.Context, set *flotillav1.ApplicationSet, success bool, conds ...metav1.Condition) error {
	st := map[string]any{}
	if ro := set.Status.Rollout; ro != nil {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ro)
		if err != nil {
			return err
		}
		st["rollout"] = u
		conds = append(conds, rolledOutCondition(ro))
	}
	st["conditions"] = kube.Conditions(set.Status.Conditions, set.Generation, conds...)
	if success {
		st["observedGeneration"] = set.Generation
	}
	return kube.ApplyStatus(ctx, r.Client, set, "ApplicationSet", flotillav1.FieldManagerHub, st)
}

func (r *Reconciler) pollInterval(set *flotillav1.ApplicationSet) time.Duration {
	var interval time.Duration
	var visit func(spec *generators.Spec)
	visit = func(spec *generators.Spec) {
		if spec.Git != nil {
			d := r.GitPollInterval
			if spec.Git.RequeueAfterSeconds != nil {
				d = time.Duration(*spec.Git.RequeueAfterSeconds) * time.Second
			}
			if interval == 0 || d < interval {
				interval = d
			}
		}
		for _, c := range []*generators.Combination{spec.Matrix, spec.Merge} {
			if c != nil {
				for i := range c.Generators {
					visit(&c.Generators[i])
				}
			}
		}
	}
	for i := range set.Spec.Generators {
		if spec, err := generators.FromAPI(&set.Spec.Generators[i]); err == nil {
			visit(spec)
		}
	}
	// Pinned Applications move only when the hub resolves their branch again.
	if r.Revisions != nil && set.Spec.Template.Spec.Source.Chart == "" && !fullSHA.MatchString(set.Spec.Template.Spec.Source.TargetRevision) &&
		(interval == 0 || r.GitPollInterval < interval) {
		interval = r.GitPollInterval
	}
	return interval
}

func (r *Reconciler) event(set *flotillav1.ApplicationSet, kind, reason, msg string) {
	if r.Recorder != nil {
		if len(msg) > 1000 {
			msg = msg[:1000]
		}
		r.Recorder.Eventf(set, nil, kind, reason, "Reconcile", "%s", msg)
	}
}

func (r *Reconciler) remember(key types.NamespacedName, apps []*flotillav1.Application) {
	clusters := make(map[string]bool, len(apps))
	for _, a := range apps {
		clusters[a.Spec.Destination.Cluster] = true
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.selected[key] = clusters
}

func (r *Reconciler) forget(key types.NamespacedName) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.selected, key)
	delete(r.refreshed, key.String())
	delete(r.rolling, key)
	delete(r.rollouts, key)
	forgetRollout(key)
	metrics.GeneratedApplications.DeleteLabelValues(key.Namespace, key.Name)
}

// Tracked is how many sets the reconciler keeps state for (tests).
func (r *Reconciler) Tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.selected)
}

// enqueueForCluster re-queues the sets whose clusters generator selects the
// cluster before or after the change, or whose Applications used it.
func (r *Reconciler) enqueueForCluster(ctx context.Context, oldObj, newObj client.Object, q workqueueTyped) {
	var sets flotillav1.ApplicationSetList
	if err := r.Client.List(ctx, &sets); err != nil {
		log.FromContext(ctx).Error(err, "List ApplicationSets for a MemberCluster change")
		return
	}
	name := ""
	for _, o := range []client.Object{oldObj, newObj} {
		if o != nil {
			name = o.GetName()
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range sets.Items {
		set := &sets.Items[i]
		key := types.NamespacedName{Namespace: set.Namespace, Name: set.Name}
		if r.selected[key][name] || selectsAny(set, oldObj, newObj) {
			q.Add(reconcile.Request{NamespacedName: key})
		}
	}
}

// selectsAny reports whether any clusters generator of the set (at any
// nesting) selects one of the objects' labels. Templated selectors are
// treated as selecting everything.
func selectsAny(set *flotillav1.ApplicationSet, objs ...client.Object) bool {
	var visit func(spec *generators.Spec) bool
	visit = func(spec *generators.Spec) bool {
		if spec.Clusters != nil {
			sel, err := metav1.LabelSelectorAsSelector(&spec.Clusters.Selector)
			if err != nil {
				return true // templated or invalid: cannot rule it out
			}
			for _, o := range objs {
				if o != nil && sel.Matches(labels.Set(o.GetLabels())) {
					return true
				}
			}
		}
		for _, c := range []*generators.Combination{spec.Matrix, spec.Merge} {
			if c == nil {
				continue
			}
			for i := range c.Generators {
				if visit(&c.Generators[i]) {
					return true
				}
			}
		}
		return false
	}
	for i := range set.Spec.Generators {
		spec, err := generators.FromAPI(&set.Spec.Generators[i])
		if err != nil {
			continue
		}
		if visit(spec) {
			return true
		}
	}
	return false
}
