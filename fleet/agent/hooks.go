package agent

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

// Helm hook annotations. The agent runs hooks as Argo CD does, from any
// source (a chart's hooks, or the same annotations on plain manifests):
// pre-install/pre-upgrade before everything else, post-install/post-upgrade
// once everything else is Healthy, in hook-weight order, once per render.
const (
	AnnotationHelmHook             = "helm.sh/hook"
	AnnotationHelmHookWeight       = "helm.sh/hook-weight"
	AnnotationHelmHookDeletePolicy = "helm.sh/hook-delete-policy"
)

// DefaultHookTimeout bounds one hook group's wait for Healthy (a Job's completion).
const DefaultHookTimeout = 5 * time.Minute

// hookOf says whether o is a hook that runs before ("pre") or after
// ("post") the sync, or none.
func hookOf(o *unstructured.Unstructured) string {
	v, ok := o.GetAnnotations()[AnnotationHelmHook]
	if !ok {
		return ""
	}
	for _, e := range strings.Split(v, ",") {
		switch strings.TrimSpace(e) {
		case "pre-install", "pre-upgrade":
			return "pre"
		case "post-install", "post-upgrade":
			return "post"
		}
	}
	return "skip" // test, delete and rollback hooks never run in a sync
}

func hookWeight(o *unstructured.Unstructured) int {
	w, _ := strconv.Atoi(strings.TrimSpace(o.GetAnnotations()[AnnotationHelmHookWeight]))
	return w
}

func hookDeletePolicies(o *unstructured.Unstructured) []string {
	v, ok := o.GetAnnotations()[AnnotationHelmHookDeletePolicy]
	if !ok {
		return []string{"before-hook-creation"} // Helm's and Argo CD's default
	}
	var out []string
	for _, p := range strings.Split(v, ",") {
		out = append(out, strings.TrimSpace(p))
	}
	return out
}

// splitHooks takes the hooks out of a render: they are neither recorded
// nor pruned, drift-checked or counted in health, only run.
func splitHooks(objs []*unstructured.Unstructured) (main, pre, post []*unstructured.Unstructured) {
	for _, o := range objs {
		switch hookOf(o) {
		case "":
			main = append(main, o)
		case "pre":
			pre = append(pre, o)
		case "post":
			post = append(post, o)
		}
	}
	byWeight := func(a, b *unstructured.Unstructured) int {
		if d := hookWeight(a) - hookWeight(b); d != 0 {
			return d
		}
		return strings.Compare(a.GetKind()+"/"+a.GetName(), b.GetKind()+"/"+b.GetName())
	}
	slices.SortStableFunc(pre, byWeight)
	slices.SortStableFunc(post, byWeight)
	return main, pre, post
}

// runHooks applies hooks one weight group at a time; each group must be
// Healthy (a Job complete) before the next starts. Delete policies:
// before-hook-creation deletes the previous run's object first,
// hook-succeeded deletes it once Healthy, hook-failed once it failed.
func (r *Reconciler) runHooks(ctx context.Context, s *syncState, phase string, hooks []*unstructured.Unstructured) error {
	timeout := r.HookTimeout
	if timeout <= 0 {
		timeout = DefaultHookTimeout
	}
	prepErrs := s.applier.Prepare(hooks, s.app.Name, s.defaultNS)
	for start := 0; start < len(hooks); {
		end := start + 1
		for end < len(hooks) && hookWeight(hooks[end]) == hookWeight(hooks[start]) {
			end++
		}
		group := hooks[start:end]
		start = end
		for _, h := range group {
			if err := prepErrs[h]; err != nil {
				return fmt.Errorf("%s hook %s: %w", phase, applied.RefOf(h), err)
			}
			if slices.Contains(hookDeletePolicies(h), "before-hook-creation") {
				if err := r.deleteHook(ctx, s, h, timeout); err != nil {
					return err
				}
			}
		}
		for _, res := range s.applier.Apply(ctx, group, s.app.Name, s.defaultNS, s.hasOption(SyncOptionAdoptExisting), nil) {
			if res.Err != nil {
				return fmt.Errorf("%s hook %s: %w", phase, res.Ref, res.Err)
			}
		}
		for _, h := range group {
			health, msg, err := r.waitHook(ctx, h, timeout)
			policies := hookDeletePolicies(h)
			if err == nil && health != flotillav1.HealthHealthy {
				err = fmt.Errorf("%s hook %s is %s: %s", phase, applied.RefOf(h), health, msg)
			}
			if (err == nil && slices.Contains(policies, "hook-succeeded")) || (err != nil && slices.Contains(policies, "hook-failed")) {
				if derr := r.deleteHook(ctx, s, h, timeout); derr != nil && err == nil {
					err = derr
				}
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// waitHook polls h until it is Healthy or Degraded, or the timeout passes.
func (r *Reconciler) waitHook(ctx context.Context, h *unstructured.Unstructured, timeout time.Duration) (flotillav1.HealthStatusCode, string, error) {
	var health flotillav1.HealthStatusCode
	var msg string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(h.GroupVersionKind())
		if err := r.Client.Get(ctx, client.ObjectKeyFromObject(h), live); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		health, msg = Health(live)
		return health == flotillav1.HealthHealthy || health == flotillav1.HealthDegraded, nil
	})
	if err != nil {
		return health, msg, fmt.Errorf("hook %s did not finish within %s (%s: %s)", applied.RefOf(h), timeout, health, msg)
	}
	return health, msg, nil
}

// deleteHook deletes this Application's previous hook object, if any, and
// waits until it is gone; someone else's object of that name is refused.
func (r *Reconciler) deleteHook(ctx context.Context, s *syncState, h *unstructured.Unstructured, timeout time.Duration) error {
	live := &unstructured.Unstructured{}
	live.SetGroupVersionKind(h.GroupVersionKind())
	key := client.ObjectKeyFromObject(h)
	if err := r.Client.Get(ctx, key, live); err != nil {
		return client.IgnoreNotFound(err)
	}
	if live.GetAnnotations()[flotillav1.AnnotationApplication] != s.app.Name {
		return fmt.Errorf("hook %s: %w", applied.RefOf(h), ownership(live, applied.RefOf(h), s.app.Name, false))
	}
	bg := metav1.DeletePropagationBackground
	if err := s.writer.Delete(ctx, live, &client.DeleteOptions{PropagationPolicy: &bg}); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("delete hook %s: %w", applied.RefOf(h), err)
	}
	return wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		err := r.Client.Get(ctx, key, live.DeepCopy())
		return apierrors.IsNotFound(err), client.IgnoreNotFound(err)
	})
}

// preSyncHooks runs the render's pre hooks once, before its first apply.
func (r *Reconciler) preSyncHooks(ctx context.Context, s *syncState) bool {
	if len(s.preHooks) == 0 || s.memo.preHooksDone {
		return false
	}
	if err := r.runHooks(ctx, s, "pre-sync", s.preHooks); err != nil {
		s.out = notSynced(flotillav1.ReasonHookFailed, err, s.memo.revision, r.SyncInterval)
		return true
	}
	s.memo.preHooksDone = true
	return false
}

// postSync runs the render's post hooks once, when everything else is
// applied and Healthy.
func (r *Reconciler) postSync(ctx context.Context, s *syncState) (bool, error) {
	if len(s.postHooks) == 0 || s.memo == nil || !s.memo.applied || s.memo.postHooksDone || !allHealthy(s.results) {
		return false, nil
	}
	if err := r.runHooks(ctx, s, "post-sync", s.postHooks); err != nil {
		s.out.syncStatus = flotillav1.SyncStatusOutOfSync
		s.out.syncErr = err.Error()
		s.out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonHookFailed, Message: err.Error()}
		return true, nil //nolint:nilerr // a failed hook is the Application's news (its status), not the reconcile's error
	}
	s.memo.postHooksDone = true
	return false, nil
}
