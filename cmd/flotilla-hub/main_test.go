package main_test

import (
	"bytes"
	"io"
	"net/http"
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
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestHubBinary runs the real flotilla-hub binary against a real apiserver:
// it becomes ready, elects itself leader, expands a set, and serves
// Prometheus metrics; SIGTERM stops it cleanly.
func TestHubBinary(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	bin := testenv.BuildBinary(t, "flotilla-hub")
	require.NoError(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.SystemNamespace}}))

	metricsAddr, probeAddr := testenv.FreeAddr(t), testenv.FreeAddr(t)
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig(t), "--leader-elect",
		"--metrics-bind-address", metricsAddr, "--health-probe-bind-address", probeAddr,
		"--git-cache-dir", filepath.Join(t.TempDir(), "git"), "--allow-loopback-repositories",
		"--application-set-namespaces=*") // the test's sets are in default
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		if err := <-exited; err != nil {
			t.Logf("flotilla-hub exit: %v", err)
		}
		if t.Failed() {
			t.Logf("flotilla-hub output:\n%s", logs.String())
		}
	})

	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	testenv.WaitFor(t, 30*time.Second, "readyz", func() bool { code, _ := get("http://" + probeAddr + "/readyz"); return code == 200 })

	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "smoke", Namespace: "default"}}
	require.NoError(t, yaml.Unmarshal([]byte(`
generators: [{list: {elements: [{cluster: c1}, {cluster: c2}]}}]
template:
  metadata: {name: '{{ .cluster }}-smoke'}
  spec: {source: {repoURL: 'https://git.example/r.git'}, destination: {cluster: '{{ .cluster }}'}}
`), &set.Spec))
	require.NoError(t, env.Client.Create(ctx, set))
	testenv.WaitFor(t, 30*time.Second, "generated Applications", func() bool {
		var list flotillav1.ApplicationList
		require.NoError(t, env.Client.List(ctx, &list, client.InNamespace("default")))
		return len(list.Items) == 2
	})
	app := &flotillav1.Application{}
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "c1-smoke"}, app))
	testenv.WaitFor(t, 30*time.Second, "Delivered=False for an unknown cluster", func() bool {
		require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "c1-smoke"}, app))
		for _, c := range app.Status.Conditions {
			if c.Type == flotillav1.ConditionDelivered && c.Reason == "ClusterNotFound" {
				return true
			}
		}
		return false
	})

	code, body := get("http://" + metricsAddr + "/metrics")
	require.Equal(t, 200, code)
	for _, m := range []string{"flotilla_reconcile_duration_seconds", `flotilla_applicationset_generated_applications{applicationset="smoke",namespace="default"} 2`, "controller_runtime_reconcile_total"} {
		assert.Contains(t, body, m)
	}
	lease := &coordinationv1.Lease{}
	require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: "flotilla-hub"}, lease), "leader election Lease")
	require.NotNil(t, lease.Spec.HolderIdentity)
	assert.NotEmpty(t, *lease.Spec.HolderIdentity)

	require.NoError(t, cmd.Process.Signal(syscall.SIGTERM))
	select {
	case err := <-exited:
		assert.NoError(t, err, "clean exit on SIGTERM")
		exited <- nil
	case <-time.After(30 * time.Second):
		t.Fatal("flotilla-hub did not stop within 30s of SIGTERM")
	}
}
