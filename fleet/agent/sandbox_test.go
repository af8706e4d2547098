package agent_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// workerEnv makes this test binary act as the render sandbox's worker, so
// the sandbox runs a real child process here.
const workerEnv = "FLOTILLA_TEST_RENDER_WORKER"

func TestMain(m *testing.M) {
	if os.Getenv(workerEnv) == "1" {
		if err := agent.RenderWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func sandbox(cache *git.Cache, timeout time.Duration, memory int64) *agent.Sandbox {
	return &agent.Sandbox{Command: []string{os.Args[0]}, Env: []string{workerEnv + "=1"}, GitDir: cache.Dir(), AllowLoopback: true,
		Timeout: timeout, MemoryBytes: memory}
}

func snapshotOf(t *testing.T, files map[string]string) (*git.Cache, *git.Snapshot) {
	t.Helper()
	srv := gittest.New(t)
	repo := srv.Repo(t, "sandbox")
	repo.MustCommit(t, files, "sandbox")
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git")})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)
	return cache, snap
}

// TestSandboxRendersLikeInProcess: the sandbox's objects are the render's.
func TestSandboxRendersLikeInProcess(t *testing.T) {
	cache, snap := snapshotOf(t, map[string]string{
		"app/kustomization.yaml": "resources: [cm.yaml]\nnamePrefix: p-\n",
		"app/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {n: \"1\", big: \"12345678901234567890\"}\n",
	})
	src := flotillav1.ApplicationSource{Path: "app", Kustomize: &flotillav1.KustomizeSource{CommonLabels: map[string]string{"team": "a"}}}
	want, err := agent.Render(snap, src, agent.RenderOptions{})
	require.NoError(t, err)
	got, err := sandbox(cache, 0, 0).Render(t.Context(), agent.RenderInput{Tree: snap, Source: src})
	require.NoError(t, err)
	require.Len(t, got, len(want))
	for i := range want {
		assert.Equal(t, want[i].Object, got[i].Object)
	}
	_, err = sandbox(cache, 0, 0).Render(t.Context(), agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: "missing"}})
	require.ErrorIs(t, err, agent.ErrRender, "a render error stays a render error across the process boundary")
}

// TestSandboxHasNoNetwork: whatever kustomize field names a URL, a render
// without remote bases reaches nothing (the server sees no request), while
// the same render in process does reach it.
func TestSandboxHasNoNetwork(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		_, _ = w.Write([]byte("KEY=stolen\n"))
	}))
	t.Cleanup(srv.Close)
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
	files := map[string]string{}
	fields := map[string]string{
		"env":             "configMapGenerator: [{name: x, env: URL/env}]\n",
		"envs":            "configMapGenerator: [{name: x, envs: [URL/env]}]\n",
		"files":           "configMapGenerator: [{name: x, files: [URL/file]}]\n",
		"json6902":        "patchesJson6902: [{target: {version: v1, kind: ConfigMap, name: a}, path: URL/patch}]\n",
		"openapi":         "openapi: {path: URL/schema.json}\n",
		"replacements":    "replacements: [{path: URL/replacement.yaml}]\n",
		"configurations":  "configurations: [URL/config.yaml]\n",
		"transformers":    "transformers: [URL/transformer.yaml]\n",
		"generators":      "generators: [URL/generator.yaml]\n",
		"validators":      "validators: [URL/validator.yaml]\n",
		"patches-path":    "patches: [{path: URL/patch.yaml}]\n",
		"components":      "components: [URL/component]\n",
		"crds":            "crds: [URL/crd.yaml]\n",
		"helm-values":     "helmCharts: [{name: x, repo: URL, valuesFile: URL/values.yaml}]\n",
		"secretGenerator": "secretGenerator: [{name: x, env: URL/env}]\n",
	}
	for name, k := range fields {
		files[name+"/kustomization.yaml"] = "resources: [cm.yaml]\n" + strings.ReplaceAll(k, "URL", srv.URL)
		files[name+"/cm.yaml"] = cm
	}
	cache, snap := snapshotOf(t, files)
	sb := sandbox(cache, 0, 0)
	for name := range fields {
		t.Run(name, func(t *testing.T) {
			objs, err := sb.Render(t.Context(), agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: name}})
			for _, o := range objs {
				assert.NotContains(t, fmt.Sprint(o.Object), "stolen")
			}
			if err != nil {
				assert.NotContains(t, err.Error(), "stolen")
			}
		})
	}
	assert.Zero(t, hits.Load(), "the render sandbox reached the network")

	_, _ = agent.Render(snap, flotillav1.ApplicationSource{Path: "env"}, agent.RenderOptions{})
	assert.NotZero(t, hits.Load(), "in process the same render reaches the server: the sandbox is what stops it")
}

// TestSandboxBudgets: a render over its memory or time budget is stopped
// and fails with a message that says so; the next render works.
func TestSandboxBudgets(t *testing.T) {
	files := map[string]string{"small/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"}
	var gen strings.Builder
	gen.WriteString("configMapGenerator:\n")
	for i := range 40 {
		name := fmt.Sprintf("data-%d.txt", i)
		files["heavy/"+name] = strings.Repeat(fmt.Sprintf("%d", i%10), 900<<10)
		fmt.Fprintf(&gen, "- {name: cm-%d, files: [%s]}\n", i, name)
	}
	files["heavy/kustomization.yaml"] = gen.String()
	var many strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&many, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%d}\ndata: {k: v}\n", i)
	}
	files["many/cms.yaml"] = many.String()
	cache, snap := snapshotOf(t, files)

	_, err := sandbox(cache, time.Minute, 48<<20).Render(t.Context(), agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: "heavy"}})
	require.ErrorIs(t, err, agent.ErrRender)
	assert.ErrorContains(t, err, "memory budget")

	_, err = sandbox(cache, 200*time.Millisecond, 0).Render(t.Context(), agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: "many"}})
	require.ErrorIs(t, err, agent.ErrRender)
	assert.ErrorContains(t, err, "time budget")

	objs, err := sandbox(cache, 0, 0).Render(t.Context(), agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: "small"}})
	require.NoError(t, err)
	assert.Len(t, objs, 1)
}

// TestSandboxTimeoutStopsRemoteBaseClones: with remote bases allowed, a
// clone from a server that never answers is stopped with the render at its
// time budget: the worker and the git it started, nothing left running.
func TestSandboxTimeoutStopsRemoteBaseClones(t *testing.T) {
	hang := testenv.Blackhole(t)
	cache, snap := snapshotOf(t, map[string]string{
		"app/kustomization.yaml": "resources: ['git::http://" + hang + "/org/never.git//base?ref=main']\n",
	})
	sb := sandbox(cache, 2*time.Second, 0)
	sb.Options.AllowRemoteBases = true
	start := time.Now()
	_, err := sb.Render(t.Context(), agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: "app"}})
	require.ErrorIs(t, err, agent.ErrRender)
	assert.ErrorContains(t, err, "time budget")
	assert.Less(t, time.Since(start), 10*time.Second, "the render returned long after its budget (a git clone held it)")
	assert.Empty(t, processesMentioning(t, hang), "processes of the render still running")
}

// processesMentioning lists the command lines of running processes that
// mention s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	require.NoError(t, err)
	var found []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), s) {
			found = append(found, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return found
}
