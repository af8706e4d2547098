package testenv

import (
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/controlplane"
)

// StartWorkloads runs kube-controller-manager, kube-scheduler and kwok
// against the apiserver (the local fleet's launcher, internal/controlplane)
// and registers one fake node, so that Deployments really go Progressing →
// Available (kwok fakes the pods). Everything is stopped when the test ends.
func (e *Env) StartWorkloads(t testing.TB) {
	t.Helper()
	logs := t.TempDir()
	w, err := controlplane.NewWorkloads(e.Environment.BinaryAssetsDirectory, e.Kubeconfig(t), logs, "envtest", false)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := w.Start(); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() {
		_ = w.Stop(10 * time.Second)
		if t.Failed() {
			for _, p := range w.Processes() {
				t.Logf("%s (last lines of %s):\n%s", p.Name, p.Log, controlplane.TailFile(p.Log, 30))
			}
		}
	})
	if err := controlplane.CreateFakeNode(t.Context(), e.Client); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}
