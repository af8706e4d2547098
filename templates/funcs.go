// Package templates renders an ApplicationSet's template once per parameter
// set into Applications. Every string of the template is a Go text/template
// with missingkey=error; templates are parsed once per ApplicationSet
// generation (Compile) and executed per parameter set (Render).
package templates

import (
	"encoding/json"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// removed from sprig: they read the controller's environment or network.
var unsafeFuncs = []string{"env", "expandenv", "getHostByName"}

// FuncMap is sprig's text functions minus env, expandenv and getHostByName,
// plus toJson, toYaml, fromYaml and normalize.
func FuncMap() template.FuncMap {
	fm := sprig.TxtFuncMap()
	for _, name := range unsafeFuncs {
		delete(fm, name)
	}
	fm["toJson"] = toJSON
	fm["toYaml"] = toYAML
	fm["fromYaml"] = fromYAML
	fm["normalize"] = Normalize
	return fm
}

var funcMap = FuncMap()

func toJSON(v any) (string, error) {
	b, err := json.Marshal(v)
	return string(b), err
}

func toYAML(v any) (string, error) {
	b, err := yaml.Marshal(v)
	return strings.TrimSuffix(string(b), "\n"), err
}

func fromYAML(s string) (map[string]any, error) {
	out := map[string]any{}
	if err := yamlbound.Check([]byte(s), yamlbound.Default); err != nil {
		return nil, err
	}
	err := yaml.Unmarshal([]byte(s), &out)
	return out, err
}

// Normalize turns s into a valid DNS-1123 subdomain as Argo CD does for
// basenameNormalized: lower case, every character other than [a-z0-9-.]
// becomes '-', leading and trailing non-alphanumerics are trimmed, and the
// result is cut to 253 characters.
func Normalize(s string) string {
	b := make([]byte, 0, len(s))
	for _, r := range strings.ToLower(s) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-', r == '.':
			b = append(b, byte(r))
		default:
			b = append(b, '-')
		}
	}
	out := strings.TrimFunc(string(b), func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
	})
	if len(out) > 253 {
		out = strings.TrimRightFunc(out[:253], func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9')
		})
	}
	return out
}
