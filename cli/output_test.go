package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

var now = time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)

func ago(d time.Duration) metav1.Time { return metav1.NewTime(now.Add(-d)) }

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name)
	if *update {
		require.NoError(t, os.MkdirAll(filepath.Dir(path), 0o755))
		require.NoError(t, os.WriteFile(path, got, 0o644))
	}
	want, err := os.ReadFile(path)
	require.NoError(t, err, "missing golden file: run go test ./internal/cli -run %s -update", t.Name())
	require.Equal(t, string(want), string(got), "output changed: if intended, run go test ./internal/cli -run %s -update", t.Name())
}

func cond(typ string, status metav1.ConditionStatus, reason, msg string) metav1.Condition {
	return metav1.Condition{Type: typ, Status: status, Reason: reason, Message: msg, LastTransitionTime: ago(time.Minute)}
}

func fixtureClusters() []flotillav1.MemberCluster {
	return []flotillav1.MemberCluster{
		{ObjectMeta: metav1.ObjectMeta{Name: "prod-us-1", Labels: map[string]string{"env": "prod", "region": "us"}, CreationTimestamp: ago(49 * time.Hour)},
			Status: flotillav1.MemberClusterStatus{Server: "https://10.0.0.2:6443", KubernetesVersion: "v1.37.2",
				Conditions: []metav1.Condition{
					cond(flotillav1.ConditionReady, metav1.ConditionFalse, "Unreachable", "cannot reach https://10.0.0.2:6443: connection refused"),
					cond(flotillav1.ConditionAgentAvailable, metav1.ConditionUnknown, "ClusterNotReady", "the cluster is not reachable")},
				Applications: flotillav1.ApplicationCounts{Total: 20, Healthy: 12, Synced: 20}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-1", Labels: map[string]string{"env": "prod", "region": "eu"}, CreationTimestamp: ago(3 * time.Hour)},
			Status: flotillav1.MemberClusterStatus{Server: "https://10.0.0.1:6443", KubernetesVersion: "v1.37.2", AgentVersion: "v0.1.0",
				Conditions: []metav1.Condition{
					cond(flotillav1.ConditionReady, metav1.ConditionTrue, "Reachable", "Kubernetes v1.37.2"),
					cond(flotillav1.ConditionAgentAvailable, metav1.ConditionTrue, "Heartbeat", "renewed 3s ago")},
				Applications: flotillav1.ApplicationCounts{Total: 20, Healthy: 20, Synced: 20}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "dev-1", CreationTimestamp: ago(90 * time.Second)},
			Status: flotillav1.MemberClusterStatus{Server: "https://10.0.0.3:6443", KubernetesVersion: "v1.36.0",
				Conditions: []metav1.Condition{
					cond(flotillav1.ConditionReady, metav1.ConditionTrue, "Reachable", "Kubernetes v1.36.0"),
					cond(flotillav1.ConditionAgentAvailable, metav1.ConditionFalse, "AgentNotFound", "no agent heartbeat: install the agent")}}},
	}
}

const revA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"

func fixtureSets() []flotillav1.ApplicationSet {
	return []flotillav1.ApplicationSet{
		{ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "guestbook"}, Spec: flotillav1.ApplicationSetSpec{Strategy: &flotillav1.ApplicationSetStrategy{
			Type: flotillav1.StrategyRollingUpdate, RollingUpdate: &flotillav1.RollingUpdateStrategy{Steps: []flotillav1.RolloutStep{{Name: "canary"}, {Name: "early"}, {}}}}}, Status: flotillav1.ApplicationSetStatus{
			Rollout: &flotillav1.RolloutStatus{Phase: flotillav1.RolloutBaking, CurrentStep: 1, TargetCommit: revA, StableCommit: "ffeeddccbbaa00112233",
				Message: "step 2/3 (early): 2 of 2 Healthy at 1a2b3c4, baking 5m0s until 12:10:00"},
			Summary:   flotillav1.ApplicationSetSummary{Clusters: 40, Applications: 40, ApplicationCounts: flotillav1.ApplicationCounts{Total: 40, Synced: 39, Healthy: 38, Progressing: 1, Degraded: 1}},
			Revisions: []flotillav1.RevisionCount{{Revision: revA, Applications: 38, Healthy: 37}, {Revision: "ffeeddccbbaa", Applications: 2, Healthy: 1}},
			Conditions: []metav1.Condition{cond(flotillav1.ConditionParametersGenerated, metav1.ConditionTrue, "Generated", ""),
				cond(flotillav1.ConditionHealthy, metav1.ConditionFalse, "Degraded", "1 of 40 Applications Degraded")},
			NotHealthy: []flotillav1.NotHealthyApplication{{Cluster: "prod-us-1", Application: "prod-us-1-guestbook", Health: "Degraded", Sync: "Synced", Message: "Deployment guestbook: 0/3 available"}}}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "monitoring"}, Status: flotillav1.ApplicationSetStatus{
			Conditions: []metav1.Condition{cond(flotillav1.ConditionParametersGenerated, metav1.ConditionFalse, "TemplateError", `template: spec.source.path: map has no entry for key "app"; existing Applications are left unchanged`)}}},
	}
}

func fixtureDetail() SetDetail {
	sets := fixtureSets()
	d := SetDetail{SetStatus: setStatus(&sets[0])}
	apps := []flotillav1.Application{
		{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-1-guestbook", CreationTimestamp: ago(26 * time.Hour)}, Spec: flotillav1.ApplicationSpec{Destination: flotillav1.ApplicationDestination{Cluster: "prod-eu-1"}},
			Status: flotillav1.ApplicationStatus{Sync: flotillav1.SyncStatus{Status: "Synced", Revision: revA}, Health: flotillav1.HealthStatus{Status: "Healthy"}, LastSyncTime: ptrTime(ago(2 * time.Minute)),
				Conditions: []metav1.Condition{cond(flotillav1.ConditionDelivered, metav1.ConditionTrue, "Delivered", "")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "prod-us-1-guestbook", CreationTimestamp: ago(26 * time.Hour)}, Spec: flotillav1.ApplicationSpec{Destination: flotillav1.ApplicationDestination{Cluster: "prod-us-1"}},
			Status: flotillav1.ApplicationStatus{Sync: flotillav1.SyncStatus{Status: "Synced", Revision: revA}, Health: flotillav1.HealthStatus{Status: "Degraded", Message: "Deployment guestbook: 0/3 available\nsecond line"},
				Conditions: []metav1.Condition{cond(flotillav1.ConditionDelivered, metav1.ConditionTrue, "Delivered", "")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "dev-1-guestbook", CreationTimestamp: ago(40 * time.Second)}, Spec: flotillav1.ApplicationSpec{Destination: flotillav1.ApplicationDestination{Cluster: "dev-1"}},
			Status: flotillav1.ApplicationStatus{Conditions: []metav1.Condition{cond(flotillav1.ConditionDelivered, metav1.ConditionFalse, "ClusterUnreachable", "cannot deliver: the cluster is not Ready")}}},
		{ObjectMeta: metav1.ObjectMeta{Name: "prod-ap-1-guestbook", CreationTimestamp: ago(26 * time.Hour)}, Spec: flotillav1.ApplicationSpec{Destination: flotillav1.ApplicationDestination{Cluster: "prod-ap-1"}},
			Status: flotillav1.ApplicationStatus{Sync: flotillav1.SyncStatus{Status: "Unknown", Revision: revA}, Health: flotillav1.HealthStatus{Status: "Unknown"}, LastSyncError: "an old error",
				Conditions: []metav1.Condition{cond(flotillav1.ConditionDelivered, metav1.ConditionTrue, "Delivered", ""),
					cond(flotillav1.ConditionHealthy, metav1.ConditionUnknown, flotillav1.ReasonAgentUnavailable, "the agent is not available (HeartbeatExpired): last agent heartbeat at 2026-11-30T16:00:00Z")}}},
	}
	for i := range apps {
		d.Applications = append(d.Applications, appStatus(&apps[i]))
	}
	return d
}

func ptrTime(t metav1.Time) *metav1.Time { return &t }

func TestOutputGolden(t *testing.T) {
	cases := []struct {
		name  string
		print func(*bytes.Buffer) error
	}{
		{"cluster-list.txt", func(b *bytes.Buffer) error { return printClusters(b, "table", fixtureClusters(), now, palette{}) }},
		{"cluster-list-wide.txt", func(b *bytes.Buffer) error { return printClusters(b, "wide", fixtureClusters(), now, palette{}) }},
		{"cluster-list-colour.txt", func(b *bytes.Buffer) error {
			return printClusters(b, "table", fixtureClusters(), now, palette{on: true})
		}},
		{"cluster-list.json", func(b *bytes.Buffer) error { return printClusters(b, "json", fixtureClusters(), now, palette{}) }},
		{"cluster-list-empty.txt", func(b *bytes.Buffer) error { return printClusters(b, "table", nil, now, palette{}) }},
		{"status.txt", func(b *bytes.Buffer) error { return printFleet(b, "table", fleetOf(fixtureSets()), palette{}) }},
		{"status-wide.txt", func(b *bytes.Buffer) error { return printFleet(b, "wide", fleetOf(fixtureSets()), palette{}) }},
		{"status.json", func(b *bytes.Buffer) error { return printFleet(b, "json", fleetOf(fixtureSets()), palette{}) }},
		{"status-set.txt", func(b *bytes.Buffer) error { return printSet(b, "table", fixtureDetail(), now, palette{}) }},
		{"status-set-wide.txt", func(b *bytes.Buffer) error { return printSet(b, "wide", fixtureDetail(), now, palette{}) }},
		{"status-set.json", func(b *bytes.Buffer) error { return printSet(b, "json", fixtureDetail(), now, palette{}) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, tc.print(&b))
			golden(t, tc.name, b.Bytes())
		})
	}
}

func fleetOf(sets []flotillav1.ApplicationSet) FleetStatus {
	fs := FleetStatus{ApplicationSets: []SetStatus{}}
	for i := range sets {
		fs.ApplicationSets = append(fs.ApplicationSets, setStatus(&sets[i]))
	}
	return fs
}

// TestTableColoursKeepAlignment: escape codes are added after padding.
func TestTableColoursKeepAlignment(t *testing.T) {
	var plain, coloured bytes.Buffer
	require.NoError(t, printClusters(&plain, "table", fixtureClusters(), now, palette{}))
	require.NoError(t, printClusters(&coloured, "table", fixtureClusters(), now, palette{on: true}))
	require.NotEqual(t, plain.String(), coloured.String())
	stripped := regexpANSI.ReplaceAllString(coloured.String(), "")
	require.Equal(t, plain.String(), stripped)
}

var regexpANSI = regexp.MustCompile("\x1b\\[[0-9;]*m")
