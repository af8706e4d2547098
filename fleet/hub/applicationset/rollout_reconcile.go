package applicationset

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/metrics"
)

// rollingStrategy is the set's RollingUpdate strategy, or nil.
func rollingStrategy(set *flotillav1.ApplicationSet) *flotillav1.RollingUpdateStrategy {
	s := set.Spec.Strategy
	if s == nil || s.Type != flotillav1.StrategyRollingUpdate || s.RollingUpdate == nil || len(s.RollingUpdate.Steps) == 0 {
		return nil
	}
	return s.RollingUpdate
}

// roll applies the set's rolling update to the desired Applications'
// pinned commits and puts the rollout's new state in set.Status.Rollout.
// resolved are the commits the set's revisions resolved to now.
func (r *Reconciler) roll(ctx context.Context, set *flotillav1.ApplicationSet, desired []*flotillav1.Application, existing map[string]*flotillav1.Application, resolved []string) (*rolloutPlan, error) {
	key := types.NamespacedName{Namespace: set.Namespace, Name: set.Name}
	strategy := rollingStrategy(set)
	r.mu.Lock()
	r.rolling[key] = strategy != nil
	mem := r.rollouts[key]
	if strategy == nil {
		delete(r.rollouts, key)
	}
	r.mu.Unlock()
	if strategy == nil {
		set.Status.Rollout = nil
		return nil, nil
	}
	raw := set.Annotations[flotillav1.AnnotationRolloutAction]
	action, _, _ := strings.Cut(raw, "@") // action[@token]: the CLI adds a token so two requests differ
	in := rolloutInput{strategy: strategy, prev: set.Status.Rollout, desired: desired, existing: existing, now: time.Now(),
		paused: set.Annotations[flotillav1.AnnotationRolloutPaused] == "true", action: action}
	if mem != nil && mem.uid == set.UID {
		// This controller is the rollout's only writer: what it last wrote
		// is newer than, or as new as, what the cache holds.
		in.prev = mem.status.DeepCopy()
		if raw != "" && mem.handled == raw {
			in.action = "" // handled already: the cache has not seen the annotation go yet
		}
	}
	var note string
	switch len(resolved) {
	case 0:
	case 1:
		in.target = resolved[0]
	default:
		note = fmt.Sprintf("; the set's Applications resolve to %d different commits, a rolling update needs one repository and revision: the rollout waits", len(resolved))
	}
	if ref, ok := strings.CutPrefix(in.action, "rollback:"); ok {
		sha, err := r.resolveFor(ctx, desired, ref)
		if err != nil {
			r.event(set, corev1.EventTypeWarning, flotillav1.ReasonRolloutAction, fmt.Sprintf("rollback to %q refused: %v", ref, err))
			in.action = ""
		} else {
			in.rollbackTo = sha
		}
	} else if in.action != "" && in.action != "promote" && in.action != "abort" && in.action != "rollback" {
		r.event(set, corev1.EventTypeWarning, flotillav1.ReasonRolloutAction, fmt.Sprintf("unknown rollout action %q (promote, abort, rollback or rollback:<commit>): ignored", in.action))
		in.action = ""
	}
	var mcs flotillav1.MemberClusterList
	if err := r.Client.List(ctx, &mcs); err != nil {
		return nil, fmt.Errorf("list MemberClusters for the rollout's steps: %w", err)
	}
	in.clusterLabels = make(map[string]map[string]string, len(mcs.Items))
	for i := range mcs.Items {
		in.clusterLabels[mcs.Items[i].Name] = mcs.Items[i].Labels
	}
	p := planRollout(in)
	p.status.Message += note
	set.Status.Rollout = &p.status
	p.action = raw
	return p, nil
}

// rolloutMemory is a rollout as last written, and the rollout action
// (annotation value) handled then.
type rolloutMemory struct {
	uid     types.UID
	status  flotillav1.RolloutStatus
	handled string
}

// rememberRollout keeps the rollout just written: a reconcile woken
// before the cache sees that write (the action annotation's removal, an
// Application's report) must not plan from the older status, nor handle
// the same action twice.
func (r *Reconciler) rememberRollout(set *flotillav1.ApplicationSet, p *rolloutPlan) {
	key := types.NamespacedName{Namespace: set.Namespace, Name: set.Name}
	r.mu.Lock()
	defer r.mu.Unlock()
	// The action seen now is handled; once a version without it is seen,
	// the same value is a new request again.
	r.rollouts[key] = &rolloutMemory{uid: set.UID, status: *p.status.DeepCopy(), handled: p.action}
}

// resolveFor resolves ref in the repository of the set's Applications.
func (r *Reconciler) resolveFor(ctx context.Context, desired []*flotillav1.Application, ref string) (string, error) {
	for _, a := range desired {
		if a.Spec.Source.Chart == "" {
			return r.Revisions.Resolve(ctx, a.Spec.Source.RepoURL, ref, true)
		}
	}
	return "", fmt.Errorf("the set has no Git-sourced Application")
}

// rolloutDone tells what the rollout did, once its writes succeeded:
// Events and metrics.
func (r *Reconciler) rolloutDone(set *flotillav1.ApplicationSet, p *rolloutPlan) {
	if p == nil {
		metrics.RolloutPhase.DeletePartialMatch(map[string]string{"namespace": set.Namespace, "applicationset": set.Name})
		return
	}
	for _, e := range p.events {
		r.event(set, e.kind, e.reason, e.message)
	}
	for _, phase := range []flotillav1.RolloutPhase{flotillav1.RolloutProgressing, flotillav1.RolloutBaking, flotillav1.RolloutPaused,
		flotillav1.RolloutHalted, flotillav1.RolloutRolledBack, flotillav1.RolloutComplete} {
		v := 0.0
		if p.status.Phase == phase {
			v = 1
		}
		metrics.RolloutPhase.WithLabelValues(set.Namespace, set.Name, string(phase)).Set(v)
	}
	for _, d := range p.stepPassed {
		metrics.RolloutStepDuration.WithLabelValues(set.Namespace, set.Name).Observe(d.Seconds())
	}
	if p.rolledBack {
		metrics.Rollbacks.WithLabelValues(set.Namespace, set.Name).Inc()
	}
	if p.rollbackDone > 0 {
		metrics.RollbackDuration.WithLabelValues(set.Namespace, set.Name).Observe(p.rollbackDone.Seconds())
	}
}

// forgetRollout drops a deleted set's rollout series.
func forgetRollout(key types.NamespacedName) {
	m := map[string]string{"namespace": key.Namespace, "applicationset": key.Name}
	metrics.RolloutPhase.DeletePartialMatch(m)
	metrics.RolloutStepDuration.DeletePartialMatch(m)
	metrics.Rollbacks.DeletePartialMatch(m)
	metrics.RollbackDuration.DeletePartialMatch(m)
}

// rolledOutCondition is True once the target runs everywhere; otherwise
// its reason is the phase and its message the rollout's.
func rolledOutCondition(ro *flotillav1.RolloutStatus) metav1.Condition {
	c := metav1.Condition{Type: flotillav1.ConditionRolledOut, Status: metav1.ConditionFalse, Reason: string(ro.Phase), Message: ro.Message}
	if ro.Phase == flotillav1.RolloutComplete {
		c.Status = metav1.ConditionTrue
	}
	if c.Reason == "" {
		c.Reason = flotillav1.ReasonPending
	}
	if c.Message == "" {
		c.Message = string(ro.Phase)
	}
	return c
}

// rollingSet reports whether the set a label names has a rolling update
// (its Applications' status changes then wake it).
func (r *Reconciler) rollingSet(namespace string, labels map[string]string) bool {
	name := labels[flotillav1.LabelApplicationSet]
	if name == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rolling[types.NamespacedName{Namespace: namespace, Name: name}]
}

// rolloutStatusChanged: what the rollout reads of an Application changed.
func rolloutStatusChanged(a, b *flotillav1.Application) bool {
	return a.Status.ObservedGeneration != b.Status.ObservedGeneration || a.Status.Health.Status != b.Status.Health.Status ||
		a.Status.Sync.Revision != b.Status.Sync.Revision || unseen(a) != unseen(b)
}
