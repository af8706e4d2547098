package agent

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	ctrl "sigs.k8s.io/controller-runtime"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// handled records the refresh and sync requests this sync handled, for
// the status (the annotations stay: nothing races their writer).
func (s *syncState) handled() {
	if s.refresh {
		s.out.handledRefresh = kube.Truncate(s.app.Annotations[flotillav1.AnnotationRefresh], 256)
	}
	if s.sync {
		s.out.handledSync = kube.Truncate(s.app.Annotations[flotillav1.AnnotationSync], 256)
	}
}

// report writes the Application's status (as flotillav1.FieldManagerAgentStatus)
// and says when to look again: soon while health is not settled.
func (r *Reconciler) report(ctx context.Context, app *flotillav1.Application, out *outcome) (ctrl.Result, error) {
	s := statusOf(app, out)
	healthy := healthyCondition(s.Health)
	// A generation is observed once synced, applied, or failed in a way only
	// a change can fix (kstatus then reads Stalled as Failed, not InProgress).
	if out.synced.Status == metav1.ConditionTrue || out.applied || kube.ApplicationStalled(out.synced) {
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
		if h := s.Health.Status; h == flotillav1.HealthProgressing || h == flotillav1.HealthUnknown || h == flotillav1.HealthMissing {
			requeue = r.HealthInterval
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// statusOf is the Application's status with the outcome's news.
func statusOf(app *flotillav1.Application, out *outcome) *flotillav1.ApplicationStatus {
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
	if out.handledRefresh != "" {
		s.LastHandledRefresh = out.handledRefresh
	}
	if out.handledSync != "" {
		s.LastHandledSync = out.handledSync
	}
	if out.resources != nil || out.count == 0 && out.synced.Reason == flotillav1.ReasonSynced {
		s.Health = Worst(out.resources)
		s.ResourceCount = int32(out.count)
		if len(out.resources) > MaxResources {
			out.resources = out.resources[:MaxResources]
		}
		s.Resources = out.resources
	}
	return s
}

// healthyCondition mirrors the health status: True when Healthy, Unknown
// when nobody knows, False otherwise (its reason is the health status).
func healthyCondition(h flotillav1.HealthStatus) metav1.Condition {
	c := metav1.Condition{Type: flotillav1.ConditionHealthy, Reason: string(h.Status), Message: h.Message, Status: metav1.ConditionFalse}
	switch h.Status {
	case flotillav1.HealthHealthy:
		c.Status = metav1.ConditionTrue
	case "", flotillav1.HealthUnknown:
		c.Status = metav1.ConditionUnknown
	}
	if c.Reason == "" {
		c.Reason = string(flotillav1.HealthUnknown)
	}
	return c
}
