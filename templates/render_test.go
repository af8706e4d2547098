package templates_test

import (
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/templates"
)

func set(t testing.TB, spec string) *flotillav1.ApplicationSet {
	t.Helper()
	s := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "guestbook", Namespace: "team-a", UID: types.UID("uid-1")}}
	require.NoError(t, yaml.Unmarshal([]byte(spec), &s.Spec), "test YAML:\n%s", spec)
	return s
}

const baseTemplate = `
generators: [{list: {elements: [{a: b}]}}]
template:
  metadata:
    name: '{{ .name }}-guestbook'
    labels: {env: '{{ .metadata.labels.env }}'}
  spec:
    source: {repoURL: 'https://git.example/deploy.git', targetRevision: main, path: 'apps/guestbook/overlays/{{ .metadata.labels.env }}'}
    destination: {cluster: '{{ .name }}', namespace: guestbook}
    syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}
`

func clusterParams(name, env string) map[string]any {
	return map[string]any{"name": name, "metadata": map[string]any{"labels": map[string]any{"env": env}}}
}

func TestExpand(t *testing.T) {
	s := set(t, baseTemplate)
	apps, err := templates.Expand(s, []map[string]any{clusterParams("prod-eu-1", "prod"), clusterParams("staging-1", "staging")})
	require.NoError(t, err)
	require.Len(t, apps, 2)
	app := apps[0]
	assert.Equal(t, "prod-eu-1-guestbook", app.Name)
	assert.Equal(t, "team-a", app.Namespace)
	assert.Equal(t, "apps/guestbook/overlays/prod", app.Spec.Source.Path)
	assert.Equal(t, "prod-eu-1", app.Spec.Destination.Cluster)
	assert.Equal(t, map[string]string{"env": "prod", flotillav1.LabelApplicationSet: "guestbook", flotillav1.LabelCluster: "prod-eu-1"}, app.Labels)
	require.Len(t, app.OwnerReferences, 1)
	assert.Equal(t, "ApplicationSet", app.OwnerReferences[0].Kind)
	assert.True(t, *app.OwnerReferences[0].Controller)
	assert.Equal(t, []string{"CreateNamespace=true"}, app.Spec.SyncPolicy.SyncOptions)
	assert.True(t, app.Spec.SyncPolicy.Automated.Prune)
	assert.Equal(t, "staging-1-guestbook", apps[1].Name)
}

func TestRender(t *testing.T) {
	cases := []struct {
		name    string
		spec    string
		params  []map[string]any
		check   func(t *testing.T, apps []*flotillav1.Application)
		wantErr string
	}{
		{name: "missing key",
			spec:    baseTemplate,
			params:  []map[string]any{{"name": "prod-eu-1", "metadata": map[string]any{"labels": map[string]any{}}}},
			wantErr: `parameter set 0 (name=prod-eu-1): template.metadata.labels.env: parameter "env" is not set`},
		{name: "syntax error",
			spec:    `{generators: [], template: {metadata: {name: '{{ .name '}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params:  []map[string]any{{"name": "x"}},
			wantErr: `parse template template.metadata.name`},
		{name: "name that is not DNS-1123",
			spec:    `{generators: [], template: {metadata: {name: '{{ .name }}'}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params:  []map[string]any{{"name": "Not_Valid"}},
			wantErr: `application name "Not_Valid" is not a valid DNS-1123 name`},
		{name: "destination cluster rendered empty",
			spec:    `{generators: [], template: {metadata: {name: app}, spec: {source: {repoURL: r}, destination: {cluster: '{{ .cluster }}'}}}}`,
			params:  []map[string]any{{"cluster": ""}},
			wantErr: `destination.cluster rendered empty`},
		{name: "two parameter sets with the same name",
			spec:    `{generators: [], template: {metadata: {name: 'app-{{ .env }}'}, spec: {source: {repoURL: r}, destination: {cluster: '{{ .cluster }}'}}}}`,
			params:  []map[string]any{{"env": "prod", "cluster": "a"}, {"env": "prod", "cluster": "b"}},
			wantErr: `parameter sets 0 and 1 both produce application "app-prod"`},
		{name: "label value that is not valid",
			spec:    `{generators: [], template: {metadata: {name: app, labels: {team: '{{ .team }}'}}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params:  []map[string]any{{"team": "has spaces"}},
			wantErr: `label team="has spaces"`},
		{name: "env and expandenv are not available",
			spec:    `{generators: [], template: {metadata: {name: 'x{{ env "HOME" }}'}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params:  []map[string]any{{}},
			wantErr: `function "env" not defined`},
		{name: "getHostByName is not available",
			spec:    `{generators: [], template: {metadata: {name: '{{ getHostByName "localhost" }}'}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params:  []map[string]any{{}},
			wantErr: `function "getHostByName" not defined`},
		{name: "sprig, normalize, toJson and toYaml",
			spec:   `{generators: [], template: {metadata: {name: '{{ normalize .raw }}', annotations: {json: '{{ toJson .obj }}', yaml: '{{ toYaml .obj }}', up: '{{ upper .raw | trunc 3 }}'}}, spec: {source: {repoURL: r}, destination: {cluster: '{{ .raw | lower | replace "_" "-" }}'}}}}`,
			params: []map[string]any{{"raw": "Web_Shop", "obj": map[string]any{"a": 1}}},
			check: func(t *testing.T, apps []*flotillav1.Application) {
				assert.Equal(t, "web-shop", apps[0].Name)
				assert.Equal(t, "web-shop", apps[0].Spec.Destination.Cluster)
				assert.Equal(t, map[string]string{"json": `{"a":1}`, "yaml": "a: 1", "up": "WEB"}, apps[0].Annotations)
			}},
		{name: "templatePatch sets non-string fields",
			spec: `{generators: [], template: {metadata: {name: 'app-{{ .cluster }}'}, spec: {source: {repoURL: r}, destination: {cluster: '{{ .cluster }}'}}},
templatePatch: "spec:\n  syncPolicy:\n    automated:\n      selfHeal: {{ .selfHeal }}\n  {{- if hasKey . \"images\" }}\n  source:\n    kustomize:\n      images: {{ toJson .images }}\n  {{- end }}\n"}`,
			params: []map[string]any{{"cluster": "a", "selfHeal": true, "images": []any{"web=web:v2"}}, {"cluster": "b", "selfHeal": false}},
			check: func(t *testing.T, apps []*flotillav1.Application) {
				assert.True(t, apps[0].Spec.SyncPolicy.Automated.SelfHeal)
				assert.Equal(t, []string{"web=web:v2"}, apps[0].Spec.Source.Kustomize.Images)
				assert.Equal(t, "r", apps[0].Spec.Source.RepoURL, "the patch merges, it does not replace source")
				assert.False(t, apps[1].Spec.SyncPolicy.Automated.SelfHeal)
				assert.Nil(t, apps[1].Spec.Source.Kustomize)
			}},
		{name: "templatePatch with an unknown field",
			spec:    `{generators: [], template: {metadata: {name: app}, spec: {source: {repoURL: r}, destination: {cluster: c}}}, templatePatch: "spec:\n  sauce: {}\n"}`,
			params:  []map[string]any{{}},
			wantErr: `rendered template is not a valid Application: json: unknown field "sauce"`},
		{name: "templatePatch that is not YAML",
			spec:    `{generators: [], template: {metadata: {name: app}, spec: {source: {repoURL: r}, destination: {cluster: c}}}, templatePatch: "spec: [unclosed"}`,
			params:  []map[string]any{{}},
			wantErr: `templatePatch is not valid YAML`},
		{name: "preserveResourcesOnDeletion is carried to each Application",
			spec:   `{generators: [], syncPolicy: {preserveResourcesOnDeletion: true}, template: {metadata: {name: app}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params: []map[string]any{{}},
			check: func(t *testing.T, apps []*flotillav1.Application) {
				assert.True(t, apps[0].Spec.SyncPolicy.PreserveResourcesOnDeletion)
			}},
		{name: "templated map keys",
			spec:   `{generators: [], template: {metadata: {name: app, labels: {'team-{{ .team }}': "yes"}}, spec: {source: {repoURL: r}, destination: {cluster: c}}}}`,
			params: []map[string]any{{"team": "a"}},
			check: func(t *testing.T, apps []*flotillav1.Application) {
				assert.Equal(t, "yes", apps[0].Labels["team-a"])
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			apps, err := templates.Expand(set(t, tc.spec), tc.params)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Nil(t, apps)
				return
			}
			require.NoError(t, err)
			tc.check(t, apps)
		})
	}
}

func TestNormalize(t *testing.T) {
	cases := map[string]string{
		"guestbook": "guestbook", "Web_Shop": "web-shop", "--a..b--": "a..b", "ÄÖ": "", "x/y z": "x-y-z",
	}
	for in, want := range cases {
		t.Run(in, func(t *testing.T) { assert.Equal(t, want, templates.Normalize(in)) })
	}
}

// TestTemplatePatchInsertsScalars: a parameter lands in a templatePatch as
// one YAML scalar, whatever it holds, so it cannot add or change keys (a
// newline in a cluster annotation must not redirect the destination).
func TestTemplatePatchInsertsScalars(t *testing.T) {
	whole, err := templates.Compile(set(t, baseTemplate+`
templatePatch: |
  metadata:
    annotations:
      plain: {{ .v }}
      double: "x-{{ .v }}"
      single: 'x-{{ .v }}'
  {{- if .extra }}
  spec:
    syncPolicy:
      syncOptions:
        {{- toYaml .extra | nindent 8 }}
  {{- end }}
`))
	require.NoError(t, err)
	inner, err := templates.Compile(set(t, baseTemplate+`
templatePatch: |
  spec:
    source:
      path: apps/{{ .v }}
`))
	require.NoError(t, err)
	injections := []string{
		"web\n  destination: {cluster: other-cluster, namespace: kube-system}",
		"web\"\n  destination:\n    cluster: other-cluster",
		"web'\n  destination:\n    cluster: other-cluster",
		"{cluster: other-cluster}",
		"a: b",
		"web # comment",
		"*alias",
		"- item",
	}
	for _, v := range injections {
		t.Run(v, func(t *testing.T) {
			p := clusterParams("prod-eu-1", "prod")
			p["v"], p["extra"] = v, nil
			app, err := whole.Render(p)
			require.NoError(t, err)
			assert.Equal(t, "prod-eu-1", app.Spec.Destination.Cluster)
			assert.Equal(t, "guestbook", app.Spec.Destination.Namespace)
			assert.Equal(t, v, app.Annotations["plain"])
			assert.Equal(t, "x-"+v, app.Annotations["double"])
			assert.Equal(t, "x-"+strings.ReplaceAll(v, "\n", " "), app.Annotations["single"], "YAML folds a line break in single quotes")

			app, err = inner.Render(p)
			if err != nil {
				assert.ErrorContains(t, err, "cannot be placed inside a plain YAML scalar")
				return
			}
			assert.Equal(t, "prod-eu-1", app.Spec.Destination.Cluster)
			assert.Equal(t, "apps/"+v, app.Spec.Source.Path)
		})
	}
	p := clusterParams("prod-eu-1", "prod")
	p["v"], p["extra"] = "web", []any{"ServerSideApply=true"}
	app, err := whole.Render(p)
	require.NoError(t, err, "plain values and toYaml blocks still work")
	assert.Equal(t, "web", app.Annotations["plain"])
	assert.Equal(t, "x-web", app.Annotations["single"])
	assert.Equal(t, []string{"ServerSideApply=true"}, app.Spec.SyncPolicy.SyncOptions)
}

// TestTemplateBudgets: functions that would allocate without bound, loop a
// billion times or render differently on every reconcile fail with a
// message; deterministic functions still work.
func TestTemplateBudgets(t *testing.T) {
	params := map[string]any{"name": "prod-eu-1"}
	cases := []struct {
		tmpl, wantErr, want string
	}{
		{tmpl: `{{ repeat 100000000 "x" }}`, wantErr: "repeat: the result may be at most"},
		{tmpl: `{{ range until 8000000 }}x{{ end }}`, wantErr: "until: at most 1000 items"},
		{tmpl: `{{ range untilStep 0 8000000 1 }}x{{ end }}`, wantErr: "untilStep: at most 1000 items"},
		{tmpl: `{{ seq 8000000 }}`, wantErr: "seq: at most 1000 items"},
		{tmpl: `{{ range until 3 }}{{ range until 3 }}{{ range until 3 }}x{{ end }}{{ end }}{{ end }}`, wantErr: "range loops nest at most 2 deep"},
		{tmpl: `{{ range until 1000 }}{{ range until 1000 }}xx{{ end }}{{ end }}`, wantErr: "renders more than 1048576 bytes"},
		{tmpl: `{{ now }}`, wantErr: "now is not available in Flotilla templates"},
		{tmpl: `{{ randAlphaNum 8 }}`, wantErr: "randAlphaNum is not available"},
		{tmpl: `{{ uuidv4 }}`, wantErr: "uuidv4 is not available"},
		{tmpl: `{{ genPrivateKey "rsa" }}`, wantErr: "genPrivateKey is not available"},
		{tmpl: `{{ upper .name }}-{{ sha256sum .name | trunc 8 }}-{{ len (until 3) }}`, want: "PROD-EU-1-c228ff7d-3"},
	}
	for _, tc := range cases {
		t.Run(tc.tmpl, func(t *testing.T) {
			got, err := templates.ExecuteString("test", tc.tmpl, params)
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, got)
		})
	}
}

// TestExpansionBudget: a whole set's expansion is bounded in time and in
// rendered bytes, each string being within its own bounds; the error names
// the budget and how far the expansion got, and nothing partial is returned.
func TestExpansionBudget(t *testing.T) {
	many := func(n int, extra map[string]any) []map[string]any {
		params := make([]map[string]any, n)
		for i := range params {
			p := clusterParams(fmt.Sprintf("c-%04d", i), "prod")
			maps.Copy(p, extra)
			params[i] = p
		}
		return params
	}

	t.Run("time", func(t *testing.T) {
		// A million loop iterations per Application (each string is within
		// its own bounds), for a thousand Applications: minutes of CPU.
		s := set(t, strings.Replace(baseTemplate, "namespace: guestbook", `namespace: 'guestbook{{ range until 1000 }}{{ range until 1000 }}{{ end }}{{ end }}'`, 1))
		apps, err := templates.ExpandWithin(s, many(1000, nil), templates.Budget{Time: 200 * time.Millisecond})
		require.ErrorIs(t, err, templates.ErrTimeBudget)
		assert.Regexp(t, `rendering \d+ of 1000 parameter sets took .*, the limit is 200ms`, err.Error())
		assert.Nil(t, apps)
	})

	t.Run("bytes", func(t *testing.T) {
		s := set(t, strings.Replace(baseTemplate, "path: 'apps/guestbook/overlays/{{ .metadata.labels.env }}'", "path: '{{ .big }}'", 1))
		apps, err := templates.ExpandWithin(s, many(20, map[string]any{"big": strings.Repeat("x", 100<<10)}), templates.Budget{Bytes: 1 << 20})
		require.ErrorIs(t, err, templates.ErrBudget)
		assert.Contains(t, err.Error(), "the first 11 of 20 Applications render to more than 1048576 bytes")
		assert.Nil(t, apps)

		apps, err = templates.ExpandWithin(s, many(20, map[string]any{"big": strings.Repeat("x", 100<<10)}), templates.Budget{Bytes: 4 << 20})
		require.NoError(t, err)
		assert.Len(t, apps, 20)
	})
}
