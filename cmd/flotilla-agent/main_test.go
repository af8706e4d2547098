package main_test

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestAgentBinary runs the real flotilla-agent binary: it syncs an
// Application from Git, renews its Lease, serves metrics, and stops on SIGTERM.
func TestAgentBinary(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	bin := testenv.BuildBinary(t, "flotilla-agent")
	require.NoError(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.SystemNamespace}}))
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev := repo.MustCommit(t, map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: hello}\ndata: {from: git}\n"}, "hello")

	metricsAddr, probeAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig(t), "--metrics-bind-address", metricsAddr,
		"--health-probe-bind-address", probeAddr, "--git-cache-dir", filepath.Join(t.TempDir(), "git"), "--heartbeat-interval", "1s", "--allow-loopback-repositories",
		"--require-project-rules=false") // the test writes the Applications, as no hub
	cmd.Env = append(os.Environ(), "POD_NAME=agent-0")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			t.Logf("flotilla-agent exit: %v", err)
		}
		if t.Failed() {
			t.Logf("flotilla-agent output:\n%s", logs.String())
		}
	})

	app := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: "hello", Namespace: flotillav1.SystemNamespace},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: repo.URL, TargetRevision: "main", Path: "app"},
			Destination: flotillav1.ApplicationDestination{Cluster: "self", Namespace: "default"},
			SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true}},
		}}
	require.NoError(t, env.Client.Create(ctx, app))
	testenv.WaitFor(t, 30*time.Second, "ConfigMap from Git and Synced status", func() bool {
		cm := &corev1.ConfigMap{}
		if env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "hello"}, cm) != nil {
			return false
		}
		require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: "hello"}, app))
		return cm.Data["from"] == "git" && app.Status.Sync.Revision == rev && app.Status.Health.Status == flotillav1.HealthHealthy
	})
	testenv.WaitFor(t, 10*time.Second, "heartbeat", func() bool {
		lease := &coordinationv1.Lease{}
		err := env.Client.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: flotillav1.AgentLeaseName}, lease)
		return err == nil && lease.Spec.HolderIdentity != nil && *lease.Spec.HolderIdentity == "agent-0"
	})
	resp, err := http.Get("http://" + metricsAddr + "/metrics")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Contains(t, string(body), "flotilla_agent_sync_duration_seconds")
	resp, err = http.Get("http://" + probeAddr + "/readyz")
	require.NoError(t, err)
	_ = resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "clean exit on SIGTERM")
		exited <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("flotilla-agent did not stop within 30s of SIGTERM")
	}
}
