package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestSandbox runs what a new user runs: `flotilla sandbox up`, `status`,
// `down`; every process is gone afterwards, and so is the folder.
func TestSandbox(t *testing.T) {
	bin, err := fleettest.BuildFlotilla()
	check(t, err)
	cp, err := testenv.AssetsDir()
	check(t, err)
	dir := filepath.Join(t.TempDir(), "sandbox")
	flotilla := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(filepath.Join(bin, "flotilla"), append(args, "--dir", dir)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("flotilla %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		if _, err := os.Stat(dir); err == nil {
			_ = exec.Command(filepath.Join(bin, "flotilla"), "sandbox", "down", "--dir", dir).Run()
		}
	})
	out := flotilla("sandbox", "up", "--clusters", "2", "--control-plane-bin", cp, "--bin-dir", bin)
	for _, want := range []string{"Starting spoke spoke-2", "Waiting for 8 Applications to be Healthy", "The sandbox is up: a hub and 2 clusters.", "contexts: flotilla-hub (current), spoke-1, spoke-2"} {
		if !strings.Contains(out, want) {
			t.Fatalf("sandbox up output lacks %q:\n%s", want, out)
		}
	}
	if out := flotilla("sandbox", "up"); !strings.Contains(out, "already running") {
		t.Fatalf("a second up should find the running sandbox:\n%s", out)
	}
	status := flotilla("sandbox", "status")
	if !regexpMatch(`spoke-2\s+True\s+Ready`, status) || !regexpMatch(`sample\s+2\s+8/8\s+8/8\s+0\s+0\s+0\s+8/8 on [0-9a-f]{7}\s+Healthy`, status) {
		t.Fatalf("sandbox status:\n%s", status)
	}
	kubeconfig := strings.TrimSpace(flotilla("sandbox", "kubeconfig"))
	if _, err := os.Stat(kubeconfig); err != nil {
		t.Fatal(err)
	}
	flotilla("sandbox", "down")
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("%s still exists after down", dir)
	}
	// No process of the sandbox survives.
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, p := range procs {
		raw, _ := os.ReadFile(p)
		if strings.Contains(string(raw), dir) {
			t.Fatalf("a sandbox process survived down: %s", strings.ReplaceAll(string(raw), "\x00", " "))
		}
	}
}
