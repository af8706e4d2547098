// Package fleettest starts a localfleet.Fleet for a test: binaries built
// once, logs kept and printed when the test fails, everything stopped at
// the end.
package fleettest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/internal/controlplane"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// BuildFlotilla builds flotilla, flotilla-hub and flotilla-agent once per
// test process into a temporary folder and returns it.
func BuildFlotilla() (string, error) {
	buildOnce.Do(func() {
		root, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("find the module root: %w", err)
			return
		}
		if buildDir, buildErr = os.MkdirTemp("", "flotilla-e2e-bin-"); buildErr != nil {
			return
		}
		cmd := exec.Command("go", "build", "-o", buildDir+"/", "./cmd/flotilla", "./cmd/flotilla-hub", "./cmd/flotilla-agent")
		cmd.Dir = filepath.Dir(strings.TrimSpace(string(root)))
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build the flotilla binaries: %w\n%s", err, out)
		}
	})
	return buildDir, buildErr
}

// Start starts a fleet for a test and stops it when the test ends. Logs go
// to e2e/_artifacts/<test>/logs; they are kept, and their tails printed,
// when the test fails.
func Start(t testing.TB, spokes []string, opts ...func(*localfleet.Options)) *localfleet.Fleet {
	t.Helper()
	bin, err := BuildFlotilla()
	if err != nil {
		t.Fatal(err)
	}
	cp, err := testenv.AssetsDir()
	if err != nil {
		t.Fatal(err)
	}
	artifacts, err := filepath.Abs(filepath.Join("..", "e2e", "_artifacts"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("..", "e2e")); err != nil {
		artifacts = filepath.Join(os.TempDir(), "flotilla-e2e-artifacts")
	}
	if err := os.MkdirAll(artifacts, 0o755); err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp(artifacts, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-")
	if err != nil {
		t.Fatal(err)
	}
	o := localfleet.Options{Dir: dir, Spokes: spokes, ControlPlaneBin: cp, FlotillaBin: bin, Progress: testLogWriter{t}}
	for _, opt := range opts {
		opt(&o)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	f, err := localfleet.Start(ctx, o)
	t.Cleanup(func() {
		if f != nil {
			if err := f.Stop(); err != nil {
				t.Errorf("stop the fleet: %v", err)
			}
		}
		if t.Failed() {
			printLogs(t, filepath.Join(dir, "logs"))
			t.Logf("fleet logs kept in %s", dir)
			return
		}
		if os.Getenv("FLOTILLA_E2E_KEEP") != "" {
			t.Logf("fleet logs kept in %s (FLOTILLA_E2E_KEEP)", dir)
			return
		}
		_ = os.RemoveAll(dir)
	})
	if err != nil {
		t.Fatalf("start the fleet: %v", err)
	}
	return f
}

func printLogs(t testing.TB, dir string) {
	logs, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, l := range logs {
		name := filepath.Base(l)
		// The control planes rarely explain a Flotilla failure; keep them short.
		n := 40
		if !strings.Contains(name, "flotilla") {
			n = 8
		}
		t.Logf("--- %s (last %d lines)\n%s", name, n, controlplane.TailFile(l, n))
	}
}

type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
