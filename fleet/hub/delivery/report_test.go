package delivery

import (
	"testing"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// TestReportSaysOnlyWhatTheAgentReportedOnTheCurrentSpec: the hub mirrors
// the agent's health only when the spoke copy carries the hub's current
// generation and the agent processed it; a stale report, an unreachable
// cluster or a silent agent is Unknown, with the reason and why.
func TestReportSaysOnlyWhatTheAgentReportedOnTheCurrentSpec(t *testing.T) {
	app := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: "web", Generation: 3}}
	app.Status.ObservedGeneration = 2
	app.Status.Health = flotillav1.HealthStatus{Status: flotillav1.HealthHealthy, Message: "at generation 2"}
	spokeAt := func(hubGen string, gen, observed, syncedAt int64) *flotillav1.Application {
		s := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Generation: gen, Annotations: map[string]string{flotillav1.AnnotationHubGeneration: hubGen}}}
		s.Status.ObservedGeneration = observed
		s.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: "abc"}
		s.Status.Health = flotillav1.HealthStatus{Status: flotillav1.HealthHealthy, Message: "all 3 resources Healthy"}
		s.Status.Conditions = []metav1.Condition{
			{Type: flotillav1.ConditionSynced, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonSynced, ObservedGeneration: syncedAt},
			{Type: flotillav1.ConditionHealthy, Status: metav1.ConditionTrue, Reason: "Healthy", ObservedGeneration: syncedAt},
		}
		return s
	}
	fetchFailed := spokeAt("3", 8, 7, 8)
	fetchFailed.Status.Sync.Status = flotillav1.SyncStatusUnknown
	fetchFailed.Status.Conditions[0] = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonFetchFailed, Message: "git down", ObservedGeneration: 8}

	cases := []struct {
		name                     string
		spoke                    *flotillav1.Application
		dark                     *dark
		health                   flotillav1.HealthStatusCode
		sync                     flotillav1.SyncStatusCode
		syncedReason, healthyWhy string
		observed                 int64
	}{
		{name: "processed at the current generation", spoke: spokeAt("3", 8, 8, 8),
			health: flotillav1.HealthHealthy, sync: flotillav1.SyncStatusSynced, syncedReason: flotillav1.ReasonSynced, healthyWhy: "Healthy", observed: 3},
		{name: "the copy still carries the previous generation", spoke: spokeAt("2", 7, 7, 7),
			health: flotillav1.HealthUnknown, sync: flotillav1.SyncStatusUnknown, syncedReason: flotillav1.ReasonAwaitingAgent, healthyWhy: flotillav1.ReasonAwaitingAgent, observed: 2},
		{name: "delivered, not processed yet", spoke: spokeAt("3", 8, 7, 7),
			health: flotillav1.HealthUnknown, sync: flotillav1.SyncStatusUnknown, syncedReason: flotillav1.ReasonAwaitingAgent, healthyWhy: flotillav1.ReasonAwaitingAgent, observed: 2},
		{name: "the agent fails on the current generation", spoke: fetchFailed,
			health: flotillav1.HealthUnknown, sync: flotillav1.SyncStatusUnknown, syncedReason: flotillav1.ReasonFetchFailed, healthyWhy: flotillav1.ReasonAwaitingAgent, observed: 2},
		{name: "no copy yet",
			health: flotillav1.HealthUnknown, sync: flotillav1.SyncStatusUnknown, syncedReason: flotillav1.ReasonAwaitingAgent, healthyWhy: flotillav1.ReasonAwaitingAgent, observed: 2},
		{name: "cluster unreachable", spoke: spokeAt("3", 8, 8, 8), dark: &dark{flotillav1.ReasonClusterUnreachable, "no report since 2026-11-30T16:00:00Z: timeout"},
			health: flotillav1.HealthUnknown, sync: flotillav1.SyncStatusUnknown, syncedReason: flotillav1.ReasonClusterUnreachable, healthyWhy: flotillav1.ReasonClusterUnreachable, observed: 2},
		{name: "agent unavailable", spoke: spokeAt("3", 8, 8, 8), dark: &dark{flotillav1.ReasonAgentUnavailable, "last agent heartbeat at 2026-11-30T16:00:00Z"},
			health: flotillav1.HealthUnknown, sync: flotillav1.SyncStatusUnknown, syncedReason: flotillav1.ReasonAgentUnavailable, healthyWhy: flotillav1.ReasonAgentUnavailable, observed: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			want := app.Status.DeepCopy()
			conds := report(want, app, tc.spoke, tc.dark)
			assert.Equal(t, tc.health, want.Health.Status)
			assert.Equal(t, tc.sync, want.Sync.Status)
			assert.Equal(t, tc.observed, want.ObservedGeneration)
			if assert.Len(t, conds, 2) {
				assert.Equal(t, tc.syncedReason, conds[0].Reason)
				assert.Equal(t, tc.healthyWhy, conds[1].Reason)
			}
			if tc.dark != nil {
				assert.Equal(t, tc.dark.message, want.Health.Message, "the message says why, with the time of the last report")
			}
		})
	}
}
