package generators_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

func gitEngine(t testing.TB, opts git.Options) *generators.Engine {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = filepath.Join(t.TempDir(), "git-cache")
	}
	cache, err := git.New(opts)
	require.NoError(t, err)
	return generators.New(generators.Options{Clusters: fleet, Git: generators.GitCache{Cache: cache}})
}

func TestGitGenerators(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	repo.MustCommit(t, map[string]string{
		"apps/guestbook/kustomization.yaml":   "resources: []\n",
		"apps/Web_Shop/kustomization.yaml":    "resources: []\n",
		"apps/legacy/kustomization.yaml":      "resources: []\n",
		"apps/guestbook/overlays/prod/k.yaml": "x: 1\n",
		"clusters/prod-eu-1/config.json":      `{"cluster": {"name": "prod-eu-1", "replicas": 3}, "tier": "gold"}`,
		"clusters/staging-1/config.yaml":      "cluster:\n  name: staging-1\n  replicas: 1\ntier: bronze\n",
		"clusters/many/list.yaml":             "- {cluster: {name: a}}\n- {cluster: {name: b}}\n",
		"broken/config.yaml":                  "cluster: [unclosed\n",
		"bomb/config.yaml":                    yamlbound.Bomb(9),
		"scalar/config.yaml":                  "just a string\n",
		"big/config.yaml":                     "data: " + strings.Repeat("x", 2<<20) + "\n",
		"README.md":                           "# deploy\n",
	}, "initial")
	_, err := repo.Symlink("evil/config.json", "../../../etc/passwd", "escaping symlink")
	require.NoError(t, err)
	_, err = repo.Symlink("apps/escape", "../..", "escaping directory symlink")
	require.NoError(t, err)

	url := repo.URL
	cases := []struct {
		name    string
		gens    string
		keys    []string
		want    []string
		wantErr string
	}{
		{name: "directories with exclude",
			gens: `[{git: {repoURL: REPO, revision: main, directories: [{path: 'apps/*'}, {path: apps/legacy, exclude: true}, {path: apps/escape, exclude: true}]}}]`,
			keys: []string{"path.path", "path.basename", "path.basenameNormalized", "path.segments.0"},
			want: []string{"path.path=apps/Web_Shop path.basename=Web_Shop path.basenameNormalized=web-shop path.segments.0=apps",
				"path.path=apps/guestbook path.basename=guestbook path.basenameNormalized=guestbook path.segments.0=apps"}},
		{name: "directories with **",
			gens: `[{git: {repoURL: REPO, directories: [{path: 'apps/**/prod'}]}}]`,
			keys: []string{"path.path"}, want: []string{"path.path=apps/guestbook/overlays/prod"}},
		{name: "a directory glob matching a symlink out of the repo",
			gens:    `[{git: {repoURL: REPO, directories: [{path: 'apps/*'}]}}]`,
			wantErr: "directory apps/escape: \"apps/escape\": symlink apps/escape -> ../..: path leaves the repository"},
		{name: "files: JSON and YAML, nested keys, path params",
			gens: `[{git: {repoURL: REPO, files: [{path: 'clusters/*/config.*'}]}}]`,
			keys: []string{"cluster.name", "cluster.replicas", "tier", "path.path", "path.basename", "path.filename"},
			want: []string{"cluster.name=prod-eu-1 cluster.replicas=3 tier=gold path.path=clusters/prod-eu-1 path.basename=prod-eu-1 path.filename=config.json",
				"cluster.name=staging-1 cluster.replicas=1 tier=bronze path.path=clusters/staging-1 path.basename=staging-1 path.filename=config.yaml"}},
		{name: "a file holding a list yields a set per item",
			gens: `[{git: {repoURL: REPO, files: [{path: 'clusters/many/list.yaml'}]}}]`,
			keys: []string{"cluster.name"}, want: []string{"cluster.name=a", "cluster.name=b"}},
		{name: "post-selector on git parameters",
			gens: `[{git: {repoURL: REPO, files: [{path: 'clusters/*/config.*'}]}, selector: {matchLabels: {tier: gold}}}]`,
			keys: []string{"cluster.name"}, want: []string{"cluster.name=prod-eu-1"}},
		{name: "matrix: clusters × git directories",
			gens: `[{matrix: {generators: [{clusters: {selector: {matchLabels: {env: prod}}}}, {git: {repoURL: REPO, directories: [{path: 'apps/guestbook'}]}}]}}]`,
			keys: []string{"name", "path.basename"},
			want: []string{"name=prod-eu-1 path.basename=guestbook", "name=prod-us-1 path.basename=guestbook"}},
		{name: "matrix: git path from a sibling's parameters",
			gens: `[{matrix: {generators: [{list: {elements: [{target: prod-eu-1}, {target: staging-1}]}}, {git: {repoURL: REPO, files: [{path: 'clusters/{{ .target }}/config.*'}]}}]}}]`,
			keys: []string{"target", "cluster.name", "tier"}, want: []string{"target=prod-eu-1 cluster.name=prod-eu-1 tier=gold", "target=staging-1 cluster.name=staging-1 tier=bronze"}},
		{name: "YAML alias bomb",
			gens:    `[{git: {repoURL: REPO, files: [{path: 'bomb/*.yaml'}]}}]`,
			wantErr: "generators[0] (git): file bomb/config.yaml: document 1: YAML too large when expanded"},
		{name: "malformed file",
			gens:    `[{git: {repoURL: REPO, files: [{path: 'broken/*.yaml'}]}}]`,
			wantErr: "generators[0] (git): file broken/config.yaml: malformed YAML/JSON"},
		{name: "file that is not an object",
			gens:    `[{git: {repoURL: REPO, files: [{path: 'scalar/*.yaml'}]}}]`,
			wantErr: "file scalar/config.yaml: must hold an object of parameters or a list of them"},
		{name: "oversized file",
			gens:    `[{git: {repoURL: REPO, files: [{path: 'big/*.yaml'}]}}]`,
			wantErr: "file too large"},
		{name: "file symlink out of the repo",
			gens:    `[{git: {repoURL: REPO, files: [{path: 'evil/*.json'}]}}]`,
			wantErr: "symlink evil/config.json -> ../../../etc/passwd: path leaves the repository"},
		{name: "glob with ..",
			gens:    `[{git: {repoURL: REPO, directories: [{path: 'apps/../../etc'}]}}]`,
			wantErr: "directories[0]: \"apps/../../etc\": path leaves the repository"},
		{name: "absolute glob",
			gens:    `[{git: {repoURL: REPO, files: [{path: '/etc/*'}]}}]`,
			wantErr: "files[0]: \"/etc/*\": path leaves the repository"},
		{name: "unknown revision",
			gens:    `[{git: {repoURL: REPO, revision: no-such-branch, directories: [{path: 'apps/*'}]}}]`,
			wantErr: `generators[0] (git): resolve "no-such-branch"`},
	}
	e := gitEngine(t, git.Options{AllowLoopback: true})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.Generate(t.Context(), gens(t, strings.ReplaceAll(tc.gens, "REPO", url)))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, summarize(got, tc.keys...))
		})
	}

	t.Run("a new commit changes the result", func(t *testing.T) {
		spec := gens(t, `[{git: {repoURL: `+url+`, directories: [{path: 'apps/*'}, {path: apps/escape, exclude: true}]}}]`)
		before, err := e.Generate(t.Context(), spec)
		require.NoError(t, err)
		assert.Equal(t, []string{"path.basename=Web_Shop", "path.basename=guestbook", "path.basename=legacy"}, summarize(before, "path.basename"))
		repo.MustCommit(t, map[string]string{"apps/payments/kustomization.yaml": "resources: []\n", "apps/legacy/kustomization.yaml": gittest.Delete}, "add payments, drop legacy")
		after, err := e.Generate(t.Context(), spec)
		require.NoError(t, err)
		assert.Equal(t, []string{"path.basename=Web_Shop", "path.basename=guestbook", "path.basename=payments"}, summarize(after, "path.basename"))
	})
}

func TestGitUnreachable(t *testing.T) {
	addr := testenv.Blackhole(t)
	e := gitEngine(t, git.Options{AllowLoopback: true, Timeout: 300 * time.Millisecond})
	got, err := e.Generate(t.Context(), gens(t, `[{list: {elements: [{a: b}]}}, {git: {repoURL: 'http://`+addr+`/deploy.git', directories: [{path: 'apps/*'}]}}]`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "generators[1] (git)")
	assert.Contains(t, err.Error(), "timed out after 300ms")
	assert.Nil(t, got)
}
