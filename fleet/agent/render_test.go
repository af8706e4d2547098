package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

const deployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec: {containers: [{name: web, image: nginx:1.25}]}
`

func TestRender(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	repo.MustCommit(t, map[string]string{
		"apps/web/base/kustomization.yaml":          "resources: [deployment.yaml, service.yaml]\n",
		"apps/web/base/deployment.yaml":             deployment,
		"apps/web/base/service.yaml":                "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n",
		"apps/web/overlays/prod/kustomization.yaml": "resources: [../../base]\nnamespace: web-prod\n",
		"plain/a.yaml":                              "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {k: v}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n",
		"plain/notes.txt":                           "not a manifest",
		"plain/sub/c.json":                          `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}`,
		"broken/bad.yaml":                           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: [unclosed\n",
		"escape/kustomization.yaml":                 "resources: [../../../etc]\n",
		"remote/kustomization.yaml":                 "resources: ['https://github.com/example/repo//base?ref=main']\n",
		"huge/big.yaml":                             "data: " + strings.Repeat("x", 2<<20) + "\n",
		"nameless/a.yaml":                           "apiVersion: v1\nkind: ConfigMap\nmetadata: {}\n",
	}, "apps")
	_, err := repo.Symlink("passwd/cm.yaml", "/etc/passwd", "symlink to /etc/passwd")
	require.NoError(t, err)

	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git")})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)

	cases := []struct {
		name    string
		src     flotillav1.ApplicationSource
		want    []string // kind/namespace/name
		check   func(t *testing.T, objs map[string]map[string]any)
		wantErr string
	}{
		{name: "kustomize overlay with a base", src: flotillav1.ApplicationSource{Path: "apps/web/overlays/prod"},
			want: []string{"Deployment/web-prod/web", "Service/web-prod/web"}},
		{name: "kustomize options on top", src: flotillav1.ApplicationSource{Path: "apps/web/base", Kustomize: &flotillav1.KustomizeSource{
			NamePrefix: "eu-", Namespace: "shop", CommonLabels: map[string]string{"team": "a"}, Images: []string{"nginx:1.27"},
			Patches: []flotillav1.KustomizePatch{{Patch: `[{"op": "replace", "path": "/spec/replicas", "value": 3}]`, Target: &flotillav1.KustomizeSelector{Kind: "Deployment"}}}}},
			want: []string{"Deployment/shop/eu-web", "Service/shop/eu-web"},
			check: func(t *testing.T, objs map[string]map[string]any) {
				d := objs["Deployment/shop/eu-web"]
				spec := d["spec"].(map[string]any)
				assert.EqualValues(t, 3, spec["replicas"])
				assert.Equal(t, "a", d["metadata"].(map[string]any)["labels"].(map[string]any)["team"])
				assert.Equal(t, "a", spec["selector"].(map[string]any)["matchLabels"].(map[string]any)["team"])
				c := spec["template"].(map[string]any)["spec"].(map[string]any)["containers"].([]any)[0].(map[string]any)
				assert.Equal(t, "nginx:1.27", c["image"])
			}},
		{name: "plain directory", src: flotillav1.ApplicationSource{Path: "plain"},
			want: []string{"ConfigMap//a", "ConfigMap//b"}},
		{name: "plain directory, recursive", src: flotillav1.ApplicationSource{Path: "plain", Directory: &flotillav1.DirectorySource{Recurse: true}},
			want: []string{"ConfigMap//a", "ConfigMap//b", "ConfigMap//c"}},
		{name: "malformed YAML", src: flotillav1.ApplicationSource{Path: "broken"}, wantErr: "kustomize build broken"},
		{name: "a path that does not exist", src: flotillav1.ApplicationSource{Path: "apps/nope"}, wantErr: `source.path "apps/nope" does not exist`},
		{name: "a path with ..", src: flotillav1.ApplicationSource{Path: "apps/../../etc"}, wantErr: "path leaves the repository"},
		{name: "a kustomization reaching outside the repo", src: flotillav1.ApplicationSource{Path: "escape"}, wantErr: `escape/kustomization.yaml references "../../../etc", which leaves the repository`},
		{name: "a remote base", src: flotillav1.ApplicationSource{Path: "remote"}, wantErr: "remote bases are disabled"},
		{name: "a symlink to /etc/passwd", src: flotillav1.ApplicationSource{Path: "passwd"}, wantErr: "symlink passwd/cm.yaml -> /etc/passwd: path leaves the repository"},
		{name: "a 2 MiB file", src: flotillav1.ApplicationSource{Path: "huge"}, wantErr: "file too large"},
		{name: "a manifest without a name", src: flotillav1.ApplicationSource{Path: "nameless"}, wantErr: "kustomize build nameless"},
		{name: "a bad image override", src: flotillav1.ApplicationSource{Path: "plain", Kustomize: &flotillav1.KustomizeSource{Images: []string{"=x"}}}, wantErr: "kustomize.images"},
	}
	t.Run("on disk when remote bases are allowed", func(t *testing.T) {
		tmp := t.TempDir()
		t.Setenv("TMPDIR", tmp)
		objs, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "apps/web/overlays/prod"}, agent.RenderOptions{AllowRemoteBases: true})
		require.NoError(t, err)
		assert.Len(t, objs, 2)
		left, err := filepath.Glob(filepath.Join(tmp, "flotilla-render-*"))
		require.NoError(t, err)
		assert.Empty(t, left, "the render directory is removed")
	})
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := agent.Render(snap, tc.src, agent.RenderOptions{})
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.ErrorIs(t, err, agent.ErrRender)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			got := map[string]map[string]any{}
			var ids []string
			for _, o := range objs {
				id := o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName()
				ids = append(ids, id)
				got[id] = o.Object
			}
			assert.ElementsMatch(t, tc.want, ids)
			if tc.check != nil {
				tc.check(t, got)
			}
		})
	}
}

// TestRenderRefusesYAMLBombs: an alias bomb in a manifest, a kustomization
// or an Application's inline patch fails that render at once, allocating
// little; a bomb elsewhere in the repository does not break other apps.
func TestRenderRefusesYAMLBombs(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "bombs")
	repo.MustCommit(t, map[string]string{
		"manifest/cm.yaml":                 yamlbound.Bomb(9),
		"kustomization/kustomization.yaml": "resources: [cm.yaml]\n" + strings.TrimPrefix(yamlbound.Bomb(9), "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: bomb}\n"),
		"kustomization/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
		"ok/cm.yaml":                       "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n",
	}, "bombs")
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git")})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)

	patchBomb := flotillav1.ApplicationSource{Path: "ok", Kustomize: &flotillav1.KustomizeSource{
		Patches: []flotillav1.KustomizePatch{{Patch: yamlbound.Bomb(9)}}}}
	for name, src := range map[string]flotillav1.ApplicationSource{
		"manifest":      {Path: "manifest"},
		"kustomization": {Path: "kustomization"},
		"inline patch":  patchBomb,
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := agent.Render(snap, src, agent.RenderOptions{})
			runtime.ReadMemStats(&after)
			require.ErrorIs(t, err, agent.ErrRender)
			assert.ErrorContains(t, err, "YAML too large when expanded")
			assert.Less(t, after.TotalAlloc-before.TotalAlloc, uint64(64<<20), "bytes allocated to refuse the bomb")
		})
	}
	objs, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "ok"}, agent.RenderOptions{})
	require.NoError(t, err, "a bomb elsewhere in the repository does not break this app")
	require.Len(t, objs, 1)
}

// TestRenderRefusesCustomOpenAPI: a custom schema is refused, and so two
// Applications render the same in either order.
func TestRenderRefusesCustomOpenAPI(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "openapi")
	repo.MustCommit(t, map[string]string{
		"schema/kustomization.yaml": "openapi: {path: schema.json}\nresources: [cm.yaml]\n",
		"schema/schema.json":        `{"definitions": {}}`,
		"schema/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"plain/kustomization.yaml":  "resources: [d.yaml]\npatches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata: {name: web}\n    spec: {template: {spec: {containers: [{name: web, image: 'nginx:2'}]}}}\n",
		"plain/d.yaml":              deployment,
	}, "openapi")
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git")})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)
	first, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "plain"}, agent.RenderOptions{})
	require.NoError(t, err)
	_, err = agent.Render(snap, flotillav1.ApplicationSource{Path: "schema"}, agent.RenderOptions{})
	require.ErrorIs(t, err, agent.ErrRender)
	assert.ErrorContains(t, err, "custom OpenAPI schemas are not supported")
	again, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "plain"}, agent.RenderOptions{})
	require.NoError(t, err)
	require.Len(t, again, len(first))
	assert.Equal(t, first[0].Object, again[0].Object)
}

// TestRemoteBasesModeReadsNoHostFile: with remote bases allowed the render
// runs on disk, and still no kustomize field reads a file outside the
// kustomization's own directory.
func TestRemoteBasesModeReadsNoHostFile(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "host.env")
	require.NoError(t, os.WriteFile(secret, []byte("SECRET=leaked-from-the-host\n"), 0o600))
	cm := "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"
	fields := map[string]string{
		"env":      "configMapGenerator: [{name: x, env: SECRET}]\n",
		"envs":     "configMapGenerator: [{name: x, envs: [SECRET]}]\n",
		"files":    "configMapGenerator: [{name: x, files: [SECRET]}]\n",
		"secret":   "secretGenerator: [{name: x, env: SECRET}]\n",
		"json6902": "patchesJson6902: [{target: {version: v1, kind: ConfigMap, name: a}, path: SECRET}]\n",
		"patches":  "patches: [{path: SECRET}]\n",
		"relative": "configMapGenerator: [{name: x, env: ../../../../../../../../../../RELSECRET}]\n",
	}
	files := map[string]string{}
	for name, k := range fields {
		k = strings.ReplaceAll(k, "RELSECRET", strings.TrimPrefix(secret, "/"))
		files[name+"/kustomization.yaml"] = "resources: [cm.yaml]\n" + strings.ReplaceAll(k, "SECRET", secret)
		files[name+"/cm.yaml"] = cm
	}
	_, snap := snapshotOf(t, files)
	for name := range fields {
		t.Run(name, func(t *testing.T) {
			objs, err := agent.Render(snap, flotillav1.ApplicationSource{Path: name}, agent.RenderOptions{AllowRemoteBases: true})
			for _, o := range objs {
				assert.NotContains(t, fmt.Sprint(o.Object), "leaked-from-the-host")
			}
			assert.Error(t, err, "a file outside the kustomization is refused")
		})
	}
}

// TestRenderFollowsDirectorySymlinks: a symlink to a directory inside the
// repository works as that directory (one that leaves it is refused).
func TestRenderFollowsDirectorySymlinks(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "links")
	repo.MustCommit(t, map[string]string{
		"shared/kustomization.yaml": "resources: [cm.yaml]\n",
		"shared/cm.yaml":            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared}\n",
		"app/kustomization.yaml":    "resources: [shared]\nnamePrefix: app-\n",
	}, "shared")
	_, err := repo.Symlink("app/shared", "../shared", "link the shared base")
	require.NoError(t, err)
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git")})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)
	objs, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "app"}, agent.RenderOptions{})
	require.NoError(t, err)
	require.Len(t, objs, 1)
	assert.Equal(t, "app-shared", objs[0].GetName())
}

// TestRenderCountsObjectsBeforeKustomize: a render of more objects than
// allowed fails before kustomize builds them (whose cost grows faster than
// linearly: ~16,000 tiny objects took over a minute).
func TestRenderCountsObjectsBeforeKustomize(t *testing.T) {
	var many strings.Builder
	for i := range 16000 {
		fmt.Fprintf(&many, "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: c%d}\n", i)
	}
	srv := gittest.New(t)
	repo := srv.Repo(t, "many")
	repo.MustCommit(t, map[string]string{
		"plain/cms.yaml":                many.String(),
		"kustomized/kustomization.yaml": "resources: [../base]\n",
		"base/kustomization.yaml":       "resources: [cms.yaml]\n",
		"base/cms.yaml":                 many.String(),
		"fine/kustomization.yaml":       "resources: [cm.yaml]\n",
		"fine/cm.yaml":                  "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: one}\n",
	}, "many objects")
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git"), MaxFileSize: 4 << 20})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)
	for _, p := range []string{"plain", "kustomized"} {
		t.Run(p, func(t *testing.T) {
			_, err := agent.Render(snap, flotillav1.ApplicationSource{Path: p}, agent.RenderOptions{})
			require.ErrorIs(t, err, agent.ErrRender)
			assert.ErrorContains(t, err, "holds at least 16000 objects, the limit is 5000")
		})
	}
	objs, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "fine"}, agent.RenderOptions{})
	require.NoError(t, err)
	assert.Len(t, objs, 1)
}

// TestRenderLoadsOnlyWhatItReaches: a render reads the files its
// kustomizations reach, not the whole repository: megabytes elsewhere do
// not count toward its byte budget, and a base it uses does.
func TestRenderLoadsOnlyWhatItReaches(t *testing.T) {
	files := map[string]string{
		"app/kustomization.yaml":   "resources: [../base]\nnamePrefix: app-\n",
		"base/kustomization.yaml":  "resources: [cm.yaml]\n",
		"base/cm.yaml":             "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n",
		"heavy/kustomization.yaml": "resources: [../big]\n",
	}
	for i := range 4 {
		files[fmt.Sprintf("big/data-%d.yaml", i)] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: big-" + fmt.Sprint(i) + "}\ndata: {x: " + strings.Repeat("x", 900<<10) + "}\n"
	}
	files["big/kustomization.yaml"] = "resources: [data-0.yaml, data-1.yaml, data-2.yaml, data-3.yaml]\n"
	_, snap := snapshotOf(t, files)
	opts := agent.RenderOptions{MaxTotalSize: 1 << 20} // less than the repository, more than the app reads
	objs, err := agent.Render(snap, flotillav1.ApplicationSource{Path: "app"}, opts)
	require.NoError(t, err, "the 3.6 MiB elsewhere is never read")
	require.Len(t, objs, 1)
	assert.Equal(t, "app-a", objs[0].GetName())
	_, err = agent.Render(snap, flotillav1.ApplicationSource{Path: "heavy"}, opts)
	require.ErrorIs(t, err, agent.ErrRender)
	assert.ErrorContains(t, err, "the render reads more than 1048576 bytes of the repository")
}
