package agent

import (
	"context"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

// checkDrift decides whether this sync applies: a render not applied yet
// (automated sync), a refresh, or a retry of rejected objects. Otherwise
// it checks drift when a watched object changed, when nothing was applied
// yet, and every sync interval as a safety net for missed events; drift is
// corrected when selfHeal is on.
func (r *Reconciler) checkDrift(ctx context.Context, s *syncState) (bool, error) {
	m := s.memo
	_, dirty := r.dirty.LoadAndDelete(s.key)
	// Objects the apiserver rejected are retried now and then, not on every event.
	retry := s.auto && len(m.errs) > 0 && time.Since(m.appliedAt) > 10*r.HealthInterval
	s.apply = (s.auto && (!m.applied || s.refresh)) || s.sync || retry
	s.drifted = m.drifted
	if s.drifted == nil {
		s.drifted = map[string]string{}
	}
	periodic := time.Since(m.driftAt) > r.SyncInterval
	if s.apply || !(dirty || !m.applied || periodic) {
		return false, nil
	}
	m.driftAt = time.Now()
	var ok []*unstructured.Unstructured
	for _, o := range s.objs {
		if s.prepErrs[o] == nil {
			ok = append(ok, o)
		}
	}
	drifted, err := r.applier.Drift(ctx, ok, s.app.Spec.IgnoreDifferences)
	s.drifted, m.drifted = drifted, drifted
	log.FromContext(ctx).V(1).Info("Drift check", "dirty", dirty, "drifted", len(drifted), "selfHeal", s.selfHeal)
	if err != nil {
		return false, err
	}
	if len(drifted) > 0 && (s.selfHeal || !m.applied && s.auto) {
		s.apply = true
		if m.applied {
			r.correctingDrift(ctx, s)
		}
	}
	return false, nil
}

// correctingDrift counts, logs and announces the drift about to be re-applied.
func (r *Reconciler) correctingDrift(ctx context.Context, s *syncState) {
	s.memo.corrected = max(s.memo.corrected, s.app.Status.DriftCorrections) + int64(len(s.drifted))
	for k, manager := range s.drifted {
		log.FromContext(ctx).Info("Correcting drift", "object", k, "changedBy", manager)
		driftCorrections.WithLabelValues(s.app.Name).Inc()
		if r.Recorder != nil {
			r.Recorder.Eventf(s.app, nil, corev1.EventTypeNormal, flotillav1.ReasonDriftCorrected, "SelfHeal",
				"%s drifted from Git (changed by %s); re-applied", strings.ReplaceAll(k, "/", " "), manager)
		}
	}
}

// Drift dry-runs the apply of each object and reports those whose live
// state differs from what Git says, with the field manager that last
// changed them.
func (a *Applier) Drift(ctx context.Context, objs []*unstructured.Unstructured, ignore ignoreRules) (map[string]string, error) {
	drifted := map[string]string{}
	for _, o := range objs {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(o.GroupVersionKind())
		err := a.Client.Get(ctx, client.ObjectKeyFromObject(o), live)
		if apierrors.IsNotFound(err) {
			drifted[applied.RefOf(o).Key()] = "(deleted)"
			continue
		}
		if err != nil {
			continue // unreadable (Forbidden, a timeout): reported Unknown with the reason, checked again next time
		}
		dry := ignore.respect(o, live).DeepCopy()
		if err := a.Client.Patch(ctx, dry, client.Apply, client.FieldOwner(flotillav1.FieldManagerAgent), client.ForceOwnership, client.DryRunAll); err != nil {
			continue // reported by the next apply
		}
		if !equality.Semantic.DeepEqual(comparable(dry), comparable(live)) {
			drifted[applied.RefOf(o).Key()] = lastOtherManager(live)
		}
	}
	return drifted, nil
}

func comparable(u *unstructured.Unstructured) map[string]any {
	c := u.DeepCopy().Object
	unstructured.RemoveNestedField(c, "metadata", "managedFields")
	unstructured.RemoveNestedField(c, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(c, "metadata", "generation")
	unstructured.RemoveNestedField(c, "status")
	return c
}

// lastOtherManager names who last changed the object's non-status fields,
// other than the agent.
func lastOtherManager(u *unstructured.Unstructured) string {
	entries := u.GetManagedFields()
	sort.SliceStable(entries, func(i, j int) bool { return timeOf(entries[i]).After(timeOf(entries[j])) })
	for _, e := range entries {
		if e.Subresource != "status" && e.Manager != flotillav1.FieldManagerAgent {
			return e.Manager
		}
	}
	return "unknown"
}

func timeOf(e metav1.ManagedFieldsEntry) time.Time {
	if e.Time == nil {
		return time.Time{}
	}
	return e.Time.Time
}
