package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-dev/flotilla/internal/gittest"
)

const renderSet = `apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: web, namespace: default}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{cluster: c1, replicas: "1"}, {cluster: c2, replicas: "3"}]}
      - list: {elements: [{app: plain, path: plain}, {app: chart, path: chart}]}
  template:
    metadata: {name: '{{ .cluster }}-{{ .app }}'}
    spec:
      source:
        repoURL: %q
        targetRevision: main
        path: '{{ .path }}'
        helm: {values: 'replicas: {{ .replicas }}'}
      destination: {cluster: '{{ .cluster }}', namespace: web}
`

// TestRender: flotilla render prints every Application's objects
// (Kustomize/plain and a Helm chart with per-cluster values), filters by
// cluster, writes a directory, reads a private repository with
// --repo-creds, and a broken chart fails naming the Application and file.
func TestRender(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	repo.MustCommit(t, map[string]string{
		"plain/cm.yaml":               "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n",
		"chart/Chart.yaml":            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
		"chart/templates/deploy.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {replicas: {{ .Values.replicas | quote }}}\n",
	}, "apps")
	srv.RequireBasicAuth("ci", "render-s3cret")
	dir := t.TempDir()
	setFile := filepath.Join(dir, "set.yaml")
	require.NoError(t, os.WriteFile(setFile, fmt.Appendf(nil, renderSet, repo.URL), 0o600))
	creds := filepath.Join(dir, "creds.yaml")
	require.NoError(t, os.WriteFile(creds, fmt.Appendf(nil, `apiVersion: v1
kind: Secret
metadata: {name: deploy, labels: {flotilla.dev/secret-type: repository}}
stringData: {url: %q, username: ci, password: render-s3cret}
`, srv.URL), 0o600))
	cache := "--git-cache=" + filepath.Join(dir, "git")

	_, errOut, code := run(t, "render", "-f", setFile, cache)
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "Application c1-chart (cluster c1)")
	assert.Contains(t, errOut, "this component reads repositories without credentials")

	out := mustRun(t, "render", "-f", setFile, cache, "--repo-creds", creds)
	for _, want := range []string{"# Application default/c1-chart, cluster c1: 1 objects", "# Application default/c2-plain, cluster c2: 1 objects",
		"name: c2-chart\n", "replicas: \"3\"", "replicas: \"1\""} {
		assert.Contains(t, out, want)
	}
	assert.NotContains(t, out, "render-s3cret")

	only := mustRun(t, "render", "-f", setFile, cache, "--repo-creds", creds, "--cluster", "c2")
	assert.NotContains(t, only, "cluster c1")
	assert.Contains(t, only, "cluster c2")

	outDir := filepath.Join(dir, "out")
	_, errOut, code = run(t, "render", "-f", setFile, cache, "--repo-creds", creds, "-o", "dir="+outDir)
	require.Equal(t, 0, code, errOut)
	raw, err := os.ReadFile(filepath.Join(outDir, "c2", "c2-chart.yaml"))
	require.NoError(t, err)
	assert.Contains(t, string(raw), "replicas: \"3\"")

	repo.MustCommit(t, map[string]string{"chart/templates/broken.yaml": "{{ .Values.nope.deeper }}\n"}, "break")
	mustFail(t, "Application c1-chart (cluster c1)", "render", "-f", setFile, cache, "--repo-creds", creds)
	_, errOut, _ = run(t, "render", "-f", setFile, cache, "--repo-creds", creds)
	assert.Contains(t, errOut, "broken.yaml")
	mustFail(t, "unknown output", "render", "-f", setFile, "-o", "json")
	assert.False(t, strings.Contains(errOut, "render-s3cret"))
}
