package charts_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"github.com/stretchr/testify/require"
	"sigs.k8s.io/yaml"
)

// renderAgentTemplate renders one template of the agent chart with the
// subset of Helm's engine its templates use (sprig plus toYaml and fail).
// The full chart is exercised with Helm by the CLI/charts work; this keeps
// the RBAC the agent tests rely on honest in the meantime.
func renderAgentTemplate(t testing.TB, name string, values map[string]any) []map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("flotilla-agent", "templates", name))
	require.NoError(t, err)
	funcs := sprig.TxtFuncMap()
	funcs["toYaml"] = func(v any) string { b, _ := yaml.Marshal(v); return strings.TrimSuffix(string(b), "\n") }
	funcs["fail"] = func(msg string) (string, error) { return "", &failError{msg} }
	tmpl, err := template.New(name).Funcs(funcs).Parse(string(raw))
	require.NoError(t, err)
	var out bytes.Buffer
	data := map[string]any{
		"Values":  values,
		"Release": map[string]any{"Namespace": "flotilla-system", "Service": "Helm"},
		"Chart":   map[string]any{"AppVersion": "0.1.0"},
	}
	require.NoError(t, tmpl.Execute(&out, data))
	var docs []map[string]any
	for _, doc := range strings.Split(out.String(), "\n---") {
		m := map[string]any{}
		require.NoError(t, yaml.Unmarshal([]byte(doc), &m), doc)
		if len(m) > 0 {
			docs = append(docs, m)
		}
	}
	return docs
}

type failError struct{ msg string }

func (f *failError) Error() string { return f.msg }

// RenderAgentRBAC is used by the agent's RBAC test.
func TestAgentRBACTemplates(t *testing.T) {
	cases := []struct {
		name  string
		rbac  map[string]any
		kinds []string
	}{
		{name: "cluster scope", rbac: map[string]any{"create": true, "scope": "cluster", "namespaces": []any{}},
			kinds: []string{"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"}},
		{name: "two namespaces", rbac: map[string]any{"create": true, "scope": "namespaces", "namespaces": []any{"team-a", "team-b"}},
			kinds: []string{"ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "Role", "RoleBinding"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			docs := renderAgentTemplate(t, "rbac.yaml", map[string]any{"rbac": tc.rbac})
			var kinds []string
			for _, d := range docs {
				kinds = append(kinds, d["kind"].(string))
			}
			require.Equal(t, tc.kinds, kinds)
		})
	}
}
