package delivery

import (
	"fmt"
	"strconv"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// report fills want with what the hub can truthfully say of the agent's
// work on app's current spec, and returns the Synced and Healthy
// conditions to write:
//   - in the dark (cluster unreachable or gone, agent not heartbeating),
//     sync and health are Unknown for that reason: the last report may no
//     longer be true;
//   - otherwise the spoke copy's report, but only what is about the
//     current spec: the copy must carry this generation
//     (AnnotationHubGeneration), its Synced condition must be about the
//     copy's generation, and health counts only once the agent processed
//     it (status.observedGeneration). Until then both are Unknown
//     (AwaitingAgent), and the hub's observedGeneration stays behind.
func report(want *flotillav1.ApplicationStatus, app, spoke *flotillav1.Application, dk *dark) []metav1.Condition {
	if dk != nil {
		want.Sync.Status = flotillav1.SyncStatusUnknown
		want.Health = flotillav1.HealthStatus{Status: flotillav1.HealthUnknown, Message: kube.Truncate(dk.message, 1024)}
		return unknown(dk.reason, dk.message)
	}
	awaiting := fmt.Sprintf("the agent has not reported on generation %d yet", app.Generation)
	if spoke == nil {
		want.Sync.Status = flotillav1.SyncStatusUnknown
		want.Health = flotillav1.HealthStatus{Status: flotillav1.HealthUnknown, Message: awaiting}
		return unknown(flotillav1.ReasonAwaitingAgent, awaiting)
	}
	s := spoke.Status
	want.Sync, want.Health, want.Resources, want.ResourceCount = s.Sync, s.Health, s.Resources, s.ResourceCount
	want.DriftCorrections, want.LastSyncTime, want.LastSyncError = s.DriftCorrections, s.LastSyncTime, s.LastSyncError
	want.LastHandledRefresh, want.LastHandledSync = s.LastHandledRefresh, s.LastHandledSync

	current := spoke.Annotations[flotillav1.AnnotationHubGeneration] == strconv.FormatInt(app.Generation, 10)
	processed := current && s.ObservedGeneration == spoke.Generation
	if processed {
		want.ObservedGeneration = app.Generation
	}
	var out []metav1.Condition
	if c := apimeta.FindStatusCondition(s.Conditions, flotillav1.ConditionSynced); c != nil && current && c.ObservedGeneration == spoke.Generation {
		out = append(out, *c)
	} else {
		want.Sync.Status = flotillav1.SyncStatusUnknown
		out = append(out, unknown(flotillav1.ReasonAwaitingAgent, awaiting)[0])
	}
	if c := apimeta.FindStatusCondition(s.Conditions, flotillav1.ConditionHealthy); c != nil && processed {
		out = append(out, *c)
	} else {
		want.Health = flotillav1.HealthStatus{Status: flotillav1.HealthUnknown, Message: awaiting}
		out = append(out, unknown(flotillav1.ReasonAwaitingAgent, awaiting)[1])
	}
	return out
}

// unknown is Synced and Healthy, both Unknown for reason.
func unknown(reason, message string) []metav1.Condition {
	message = kube.Truncate(message, 1024)
	return []metav1.Condition{
		{Type: flotillav1.ConditionSynced, Status: metav1.ConditionUnknown, Reason: reason, Message: message},
		{Type: flotillav1.ConditionHealthy, Status: metav1.ConditionUnknown, Reason: reason, Message: message},
	}
}
