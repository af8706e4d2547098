package agent_test

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
	"github.com/flotilla-dev/flotilla/internal/helmtest"
)

const helloTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-cfg
  labels: {tier: {{ .Values.tier | quote }}}
data:
  replicas: {{ .Values.replicas | quote }}
  region: {{ .Values.region | default "none" | quote }}
  kube: {{ .Capabilities.KubeVersion.Version | quote }}
  hasWidgets: {{ .Capabilities.APIVersions.Has "example.com/v1/Widget" | quote }}
  dep: {{ .Values.dep.greeting | default "" | quote }}
`

const hookTemplate = `apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-{{ .Values.hookName }}
  annotations:
    helm.sh/hook: %s
    helm.sh/hook-weight: "%s"
`

func helloChartFiles(dir string) map[string]string {
	return map[string]string{
		dir + "/Chart.yaml":                    "apiVersion: v2\nname: hello\nversion: 0.1.0\ndependencies:\n- name: dep\n  version: 0.1.0\n",
		dir + "/values.yaml":                   "replicas: 1\ntier: bronze\nhookName: pre\ndep: {greeting: hi}\n",
		dir + "/templates/cm.yaml":             helloTemplate,
		dir + "/templates/NOTES.txt":           "hello\n",
		dir + "/crds/widget.yaml":              widgetCRD,
		dir + "/charts/dep/Chart.yaml":         "apiVersion: v2\nname: dep\nversion: 0.1.0\n",
		dir + "/charts/dep/templates/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: dep-{{ .Release.Name }}}\nspec: {ports: [{port: 80}]}\n",
		dir + "/templates/pre.yaml":            strings.ReplaceAll(strings.ReplaceAll(hookTemplate, "%s\n    helm.sh/hook-weight: \"%s\"", "pre-install,pre-upgrade\n    helm.sh/hook-weight: \"-1\""), "{{ .Values.hookName }}", "pre"),
		dir + "/templates/post.yaml":           strings.ReplaceAll(strings.ReplaceAll(hookTemplate, "%s\n    helm.sh/hook-weight: \"%s\"", "post-install\n    helm.sh/hook-weight: \"0\""), "{{ .Values.hookName }}", "post"),
		dir + "/templates/test.yaml":           strings.ReplaceAll(strings.ReplaceAll(hookTemplate, "%s\n    helm.sh/hook-weight: \"%s\"", "test\n    helm.sh/hook-weight: \"0\""), "{{ .Values.hookName }}", "test"),
		"values/prod.yaml":                     "replicas: 3\nregion: eu\n",
	}
}

const widgetCRD = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: widgets.example.com}
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions: [{name: v1, served: true, storage: true, schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}}]
`

func byName(objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	out := map[string]*unstructured.Unstructured{}
	for _, o := range objs {
		out[o.GetKind()+"/"+o.GetName()] = o
	}
	return out
}

// TestRenderHelmChartFromGit: a chart directory with a vendored
// dependency, value files from elsewhere in the repository, inline values
// and valuesObject (later wins), the release name, CRDs, the spoke's
// capabilities, and sync hooks (a test hook left out).
func TestRenderHelmChartFromGit(t *testing.T) {
	_, snap := snapshotOf(t, helloChartFiles("charts/hello"))
	src := flotillav1.ApplicationSource{Path: "charts/hello", Helm: &flotillav1.HelmSource{
		ValueFiles: []string{"../../values/prod.yaml"}, Values: "tier: silver\nreplicas: 4\n",
		ValuesObject: &runtime.RawExtension{Raw: []byte(`{"tier":"gold"}`)}, ReleaseName: "web"}}
	caps := agent.Capabilities{KubeVersion: "v1.37.2", APIVersions: []string{"example.com/v1", "example.com/v1/Widget"}}
	objs, err := agent.RenderSource(agent.RenderInput{Tree: snap, Source: src, Release: agent.HelmRelease{Name: "app", Namespace: "ns"}, Capabilities: caps}, agent.RenderOptions{})
	require.NoError(t, err)
	got := byName(objs)
	require.Contains(t, got, "ConfigMap/web-cfg")
	data, _, _ := unstructured.NestedStringMap(got["ConfigMap/web-cfg"].Object, "data")
	assert.Equal(t, map[string]string{"replicas": "4", "region": "eu", "kube": "v1.37.2", "hasWidgets": "true", "dep": "hi"}, data)
	assert.Equal(t, "gold", got["ConfigMap/web-cfg"].GetLabels()["tier"])
	assert.Contains(t, got, "Service/dep-web", "the vendored dependency renders")
	assert.Contains(t, got, "CustomResourceDefinition/widgets.example.com")
	assert.Contains(t, got, "ConfigMap/web-pre")
	assert.Equal(t, "pre-install,pre-upgrade", got["ConfigMap/web-pre"].GetAnnotations()["helm.sh/hook"])
	assert.Contains(t, got, "ConfigMap/web-post")
	assert.NotContains(t, got, "ConfigMap/web-test", "test hooks never run in a sync")

	src.Helm.SkipCRDs = true
	objs, err = agent.RenderSource(agent.RenderInput{Tree: snap, Source: src, Release: agent.HelmRelease{Name: "app"}}, agent.RenderOptions{})
	require.NoError(t, err)
	assert.NotContains(t, byName(objs), "CustomResourceDefinition/widgets.example.com")
	assert.Equal(t, "false", byName(objs)["ConfigMap/web-cfg"].Object["data"].(map[string]any)["hasWidgets"], "without the spoke's API versions")
}

// TestRenderHelmRefusesBadInput: value files outside the repository (../,
// absolute, a symlink out), a failing template (Helm's text, one line), a
// missing dependency: each a render error; nothing renders.
func TestRenderHelmRefusesBadInput(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "bad")
	files := helloChartFiles("charts/hello")
	files["charts/fails/Chart.yaml"] = "apiVersion: v2\nname: fails\nversion: 0.1.0\n"
	files["charts/fails/templates/cm.yaml"] = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: {{ required \"set .Values.needed\" .Values.needed }}}\n"
	files["charts/nodeps/Chart.yaml"] = "apiVersion: v2\nname: nodeps\nversion: 0.1.0\ndependencies:\n- name: absent\n  version: 1.0.0\n"
	files["charts/linked/Chart.yaml"] = "apiVersion: v2\nname: linked\nversion: 0.1.0\n"
	repo.MustCommit(t, files, "charts")
	_, err := repo.Symlink("values/leak.yaml", "/etc/passwd", "symlink out")
	require.NoError(t, err)
	_, err = repo.Symlink("charts/linked/values.yaml", "../../../../etc/passwd", "symlink out of a chart")
	require.NoError(t, err)
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: filepath.Join(t.TempDir(), "git")})
	require.NoError(t, err)
	snap, err := cache.Snapshot(t.Context(), repo.URL, "main")
	require.NoError(t, err)

	cases := []struct {
		name, path string
		helm       *flotillav1.HelmSource
		says       string
	}{
		{"value file past the root", "charts/hello", &flotillav1.HelmSource{ValueFiles: []string{"../../../outside.yaml"}}, "outside the repository"},
		{"absolute value file", "charts/hello", &flotillav1.HelmSource{ValueFiles: []string{"/etc/passwd"}}, "relative to the chart"},
		{"value file through a symlink out", "charts/hello", &flotillav1.HelmSource{ValueFiles: []string{"../../values/leak.yaml"}}, "leaves the repository"},
		{"a chart with a symlink out", "charts/linked", nil, "leaves the repository"},
		{"missing value file", "charts/hello", &flotillav1.HelmSource{ValueFiles: []string{"nope.yaml"}}, "nope.yaml"},
		{"failing template", "charts/fails", nil, "set .Values.needed"},
		{"missing dependency", "charts/nodeps", nil, "vendor the dependencies"},
		{"values not YAML", "charts/hello", &flotillav1.HelmSource{Values: "a: [1"}, "helm.values is not a YAML map"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := agent.RenderSource(agent.RenderInput{Tree: snap, Source: flotillav1.ApplicationSource{Path: tc.path, Helm: tc.helm}, Release: agent.HelmRelease{Name: "x"}}, agent.RenderOptions{})
			require.Error(t, err)
			assert.ErrorIs(t, err, agent.ErrRender)
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), "\n", "one line")
			assert.NotContains(t, err.Error(), "root:x:0:0", "no host file content")
		})
	}
}

// TestRenderHelmArchive: a chart archive (as fetched from a repository),
// with a value file of the chart; a value file outside the chart refused.
func TestRenderHelmArchive(t *testing.T) {
	c := helmtest.Chart{Name: "arch", Version: "1.0.0", Values: "size: small\n",
		Templates: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: {{ .Release.Name }}}\ndata: {size: {{ .Values.size }}}\n"},
		Files:     map[string]string{"values-big.yaml": "size: big\n"}}
	chart := &helmchart.Chart{Name: "arch", Version: "1.0.0", Archive: helmtest.Package(t, c)}
	in := agent.RenderInput{Chart: chart, Release: agent.HelmRelease{Name: "rel"},
		Source: flotillav1.ApplicationSource{Chart: "arch", Helm: &flotillav1.HelmSource{ValueFiles: []string{"values-big.yaml"}}}}
	objs, err := agent.RenderSource(in, agent.RenderOptions{})
	require.NoError(t, err)
	require.Len(t, objs, 1)
	assert.Equal(t, "big", objs[0].Object["data"].(map[string]any)["size"])

	in.Source.Helm.ValueFiles = []string{"../../etc/passwd"}
	_, err = agent.RenderSource(in, agent.RenderOptions{})
	require.ErrorContains(t, err, "name a file of the chart")

	in.Chart = &helmchart.Chart{Name: "arch", Archive: []byte("not a tgz")}
	_, err = agent.RenderSource(in, agent.RenderOptions{})
	require.ErrorIs(t, err, agent.ErrRender)
}
