package generators_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/flotilla-dev/flotilla/generators"
)

// FuzzFlatten checks that flattening never panics, is deterministic, and
// that every flattened key leads back to its value in the nested
// parameters (when no key itself contains a dot).
func FuzzFlatten(f *testing.F) {
	for _, seed := range []string{
		`{"name":"a","metadata":{"labels":{"env":"prod"}}}`,
		`{"path":{"segments":["apps","web"],"basename":"web"}}`,
		`{"n":3,"f":-1.25e3,"b":false,"z":null,"e":{},"l":[]}`,
		`{"a.b":"dotted","a":{"b":"nested"}}`,
		`{"deep":{"x":{"y":{"z":[{"k":"v"}]}}}}`,
		`[1,2]`, `"str"`, `{`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		var p generators.Params
		if err := dec.Decode(&p); err != nil || p == nil {
			return
		}
		flat := generators.Flatten(p)
		again := generators.Flatten(p)
		a, _ := json.Marshal(flat)
		b, _ := json.Marshal(again)
		if !bytes.Equal(a, b) {
			t.Fatalf("not deterministic: %s vs %s", a, b)
		}
		if hasDottedKey(p) {
			return
		}
		for k, v := range flat {
			got, ok := lookup(p, strings.Split(k, "."))
			if !ok {
				t.Fatalf("flattened key %q does not lead back into %s", k, doc)
			}
			if s := scalar(got); s != v {
				t.Fatalf("flattened %q = %q, nested value is %q", k, v, s)
			}
		}
	})
}

func hasDottedKey(v any) bool {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if strings.Contains(k, ".") || k == "" || hasDottedKey(val) {
				return true
			}
		}
	case []any:
		for _, val := range t {
			if hasDottedKey(val) {
				return true
			}
		}
	}
	return false
}

func lookup(v any, path []string) (any, bool) {
	for _, seg := range path {
		switch t := v.(type) {
		case map[string]any:
			next, ok := t[seg]
			if !ok {
				return nil, false
			}
			v = next
		case []any:
			i := 0
			for _, c := range seg {
				if c < '0' || c > '9' {
					return nil, false
				}
				i = i*10 + int(c-'0')
			}
			if i >= len(t) {
				return nil, false
			}
			v = t[i]
		default:
			return nil, false
		}
	}
	return v, true
}

func scalar(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		if t {
			return "true"
		}
		return "false"
	case json.Number:
		return t.String()
	}
	return "<not a scalar>"
}
