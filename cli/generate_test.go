package cli_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/cli"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

const clustersFile = `apiVersion: flotilla.dev/v1alpha1
kind: MemberCluster
metadata: {name: prod-eu-1, labels: {env: prod}}
spec: {kubeconfigSecretRef: {name: prod-eu-1-kubeconfig}}
---
apiVersion: flotilla.dev/v1alpha1
kind: MemberCluster
metadata: {name: staging-1, labels: {env: staging}}
spec: {kubeconfigSecretRef: {name: staging-1-kubeconfig}}
`

const appSet = `apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: fleet, namespace: team-a}
spec:
  generators:
  - matrix:
      generators:
      - clusters: {}
      - git: {repoURL: REPO, revision: main, directories: [{path: 'apps/*'}]}
  template:
    metadata: {name: '{{ .name }}-{{ .path.basename }}'}
    spec:
      source: {repoURL: REPO, targetRevision: main, path: '{{ .path.path }}/overlays/{{ .metadata.labels.env }}'}
      destination: {cluster: '{{ .name }}', namespace: '{{ .path.basename }}'}
`

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := cli.Main(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

func TestGenerate(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	repo.MustCommit(t, map[string]string{
		"apps/guestbook/kustomization.yaml": "resources: []\n",
		"apps/payments/kustomization.yaml":  "resources: []\n",
	}, "two apps")
	dir := t.TempDir()
	clusters := filepath.Join(dir, "clusters.yaml")
	require.NoError(t, os.WriteFile(clusters, []byte(clustersFile), 0o600))
	setFile := filepath.Join(dir, "appset.yaml")
	require.NoError(t, os.WriteFile(setFile, []byte(strings.ReplaceAll(appSet, "REPO", repo.URL)), 0o600))
	cache := "--git-cache=" + filepath.Join(dir, "git")

	t.Run("yaml", func(t *testing.T) {
		out, errOut, code := run(t, "", "generate", "-f", setFile, "--clusters", clusters, cache)
		require.Equal(t, 0, code, errOut)
		var names []string
		for _, doc := range strings.Split(out, "---\n") {
			app := flotillav1.Application{}
			require.NoError(t, yaml.UnmarshalStrict([]byte(doc), &app))
			names = append(names, app.Name)
			assert.Equal(t, "team-a", app.Namespace)
		}
		assert.Equal(t, []string{"prod-eu-1-guestbook", "prod-eu-1-payments", "staging-1-guestbook", "staging-1-payments"}, names)
	})
	t.Run("table from stdin", func(t *testing.T) {
		raw, err := os.ReadFile(setFile)
		require.NoError(t, err)
		out, errOut, code := run(t, string(raw), "generate", "-f", "-", "--clusters", clusters, cache, "-o", "table")
		require.Equal(t, 0, code, errOut)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		require.Len(t, lines, 5)
		assert.Equal(t, []string{"NAMESPACE", "NAME", "CLUSTER", "DESTINATION-NAMESPACE", "PATH"}, strings.Fields(lines[0]))
		assert.Equal(t, []string{"team-a", "staging-1-payments", "staging-1", "payments", "apps/payments/overlays/staging"}, strings.Fields(lines[4]))
	})

	errCases := []struct {
		name, set, want string
		args            []string
	}{
		{name: "missing template key", set: strings.Replace(appSet, "{{ .name }}-{{ .path.basename }}", "{{ .name }}-{{ .app }}", 1),
			want: `parameter "app" is not set`},
		{name: "no clusters file for a clusters generator", set: appSet, args: []string{"--clusters="},
			want: "no cluster inventory is available (offline: pass --clusters FILE)"},
		{name: "not an ApplicationSet", set: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
			want: `holds kind "ConfigMap", want an ApplicationSet`},
		{name: "unknown field", set: strings.Replace(appSet, "generators:", "generatorz: []\n  generators:", 1),
			want: `unknown field "generatorz"`},
		{name: "bad output format", set: appSet, args: []string{"-o", "xml"}, want: `unknown output format "xml"`},
	}
	for _, tc := range errCases {
		t.Run(tc.name, func(t *testing.T) {
			f := filepath.Join(t.TempDir(), "set.yaml")
			require.NoError(t, os.WriteFile(f, []byte(strings.ReplaceAll(tc.set, "REPO", repo.URL)), 0o600))
			args := append([]string{"generate", "-f", f, "--clusters", clusters, cache}, tc.args...)
			out, errOut, code := run(t, "", args...)
			assert.Equal(t, 1, code)
			assert.Empty(t, out, "nothing may be printed on error")
			assert.Contains(t, errOut, tc.want)
		})
	}
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, "", "version", "--client")
	require.Equal(t, 0, code)
	assert.Equal(t, "Client Version: dev\n", out)
}
