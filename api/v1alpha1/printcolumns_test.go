package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestKubectlGetFlotilla proves that `kubectl get flotilla` lists all three
// kinds with columns that answer "is it healthy?".
func TestKubectlGetFlotilla(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	c := env.Client

	mc := &flotillav1.MemberCluster{
		ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-1", Labels: map[string]string{"env": "prod"}},
		Spec:       flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: "prod-eu-1-kubeconfig"}},
	}
	require.NoError(t, c.Create(ctx, mc))
	meta.SetStatusCondition(&mc.Status.Conditions, metav1.Condition{Type: flotillav1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Probed", Message: "ok"})
	meta.SetStatusCondition(&mc.Status.Conditions, metav1.Condition{Type: flotillav1.ConditionAgentAvailable, Status: metav1.ConditionFalse, Reason: "LeaseExpired", Message: "no heartbeat"})
	mc.Status.KubernetesVersion = "v1.37.2"
	mc.Status.Applications = flotillav1.ApplicationCounts{Total: 12, Synced: 12, Healthy: 11, Progressing: 1}
	require.NoError(t, c.Status().Update(ctx, mc))

	set := &flotillav1.ApplicationSet{
		ObjectMeta: metav1.ObjectMeta{Name: "guestbook", Namespace: "default"},
		Spec: flotillav1.ApplicationSetSpec{
			Generators: []flotillav1.ApplicationSetGenerator{{List: &flotillav1.ListGenerator{Elements: []runtime.RawExtension{{Raw: []byte(`{"cluster":"prod-eu-1"}`)}}}}},
			Template: flotillav1.ApplicationTemplate{
				Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .cluster }}-guestbook"},
				Spec: flotillav1.ApplicationSpec{
					Source:      flotillav1.ApplicationSource{RepoURL: "https://git.example/deploy.git"},
					Destination: flotillav1.ApplicationDestination{Cluster: "{{ .cluster }}"},
				},
			},
		},
	}
	require.NoError(t, c.Create(ctx, set))
	set.Status.Summary = flotillav1.ApplicationSetSummary{Clusters: 40, Applications: 40,
		ApplicationCounts: flotillav1.ApplicationCounts{Total: 40, Synced: 39, Healthy: 38, Progressing: 1, Degraded: 1}}
	meta.SetStatusCondition(&set.Status.Conditions, metav1.Condition{Type: flotillav1.ConditionHealthy, Status: metav1.ConditionFalse, Reason: "Degraded", Message: "1 application degraded"})
	meta.SetStatusCondition(&set.Status.Conditions, metav1.Condition{Type: flotillav1.ConditionParametersGenerated, Status: metav1.ConditionTrue, Reason: "Generated", Message: "40 parameter sets"})
	set.Status.Rollout = &flotillav1.RolloutStatus{Phase: flotillav1.RolloutBaking, CurrentStep: 1, TargetCommit: "1a2b3c4d", StableCommit: "0f0f0f0f"}
	require.NoError(t, c.Status().Update(ctx, set))

	app := &flotillav1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-1-guestbook", Namespace: "default"},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: "https://git.example/deploy.git"},
			Destination: flotillav1.ApplicationDestination{Cluster: "prod-eu-1", Namespace: "guestbook"},
		},
	}
	require.NoError(t, c.Create(ctx, app))
	app.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: "1a2b3c4d"}
	app.Status.Health = flotillav1.HealthStatus{Status: flotillav1.HealthProgressing, Message: "Deployment guestbook/web: 1 of 3 replicas available"}
	require.NoError(t, c.Status().Update(ctx, app))

	out, err := env.Kubectl(t, "get", "flotilla", "-n", "default")
	require.NoError(t, err)
	t.Logf("kubectl get flotilla:\n%s", out)

	assertTable(t, out, "memberclusters", []string{"NAME", "READY", "AGENT", "VERSION", "APPS", "HEALTHY", "AGE"},
		[]string{"prod-eu-1", "True", "False", "v1.37.2", "12", "11"})
	assertTable(t, out, "applicationsets", []string{"NAME", "CLUSTERS", "APPS", "SYNCED", "HEALTHY", "STATUS", "ROLLOUT", "AGE"},
		[]string{"guestbook", "40", "40", "39", "38", "Degraded", "Baking"})
	assertTable(t, out, "applications", []string{"NAME", "CLUSTER", "SYNC", "HEALTH", "REVISION", "AGE"},
		[]string{"prod-eu-1-guestbook", "prod-eu-1", "Synced", "Progressing", "1a2b3c4d"})

	wide, err := env.Kubectl(t, "get", "applications.flotilla.dev", "-A", "-o", "wide")
	require.NoError(t, err)
	assert.Contains(t, wide, "MESSAGE")
	assert.Contains(t, wide, "1 of 3 replicas available")
	wideSets, err := env.Kubectl(t, "get", "applicationsets.flotilla.dev", "-A", "-o", "wide")
	require.NoError(t, err)
	for _, col := range []string{"STEP", "TARGET", "STABLE", "0f0f0f0f"} {
		assert.Contains(t, wideSets, col)
	}

	for _, short := range []string{"mcl", "fappset", "fapp"} {
		_, err := env.Kubectl(t, "get", short, "-A")
		assert.NoError(t, err, "short name %s", short)
	}
}

// assertTable finds the table whose rows name the given resource and checks
// its header and first row, column by column.
func assertTable(t *testing.T, out, resource string, header, row []string) {
	t.Helper()
	lines := strings.Split(out, "\n")
	for i, line := range lines {
		fields := strings.Fields(line)
		if len(fields) < len(header) || !equalPrefix(fields, header) || i+1 >= len(lines) {
			continue
		}
		got := strings.Fields(lines[i+1])
		require.GreaterOrEqual(t, len(got), len(row), "row under %v: %q", header, lines[i+1])
		for j, want := range row {
			cell := got[j]
			if h := header[j]; h == "NAME" {
				// With several kinds, kubectl prints "<kind>.flotilla.dev/<name>".
				if _, name, ok := strings.Cut(cell, ".flotilla.dev/"); ok {
					cell = name
				}
			}
			assert.Equal(t, want, cell, "%s column %s", resource, header[j])
		}
		return
	}
	t.Errorf("no %s table with header %v in:\n%s", resource, header, out)
}

func equalPrefix(fields, header []string) bool {
	for i, h := range header {
		if fields[i] != h {
			return false
		}
	}
	return true
}
