package generators

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Flatten turns nested parameters into dotted keys with string values, the
// form selectors and mergeKeys use: {"path": {"basename": "a"}} becomes
// {"path.basename": "a"}; list items are indexed ("path.segments.0").
func Flatten(p Params) map[string]string {
	out := make(map[string]string, len(p))
	flattenInto(out, "", p)
	return out
}

func flattenInto(out map[string]string, prefix string, v any) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch t := v.(type) {
	case map[string]any:
		// Sorted, so that a literal dotted key ("a.b") and a nested one
		// (a: {b}) collide the same way every time.
		for _, k := range sortedKeys(t) {
			flattenInto(out, join(k), t[k])
		}
	case map[string]string:
		for _, k := range sortedKeys(t) {
			out[join(k)] = t[k]
		}
	case []any:
		for i, val := range t {
			flattenInto(out, join(strconv.Itoa(i)), val)
		}
	case []string:
		for i, val := range t {
			out[join(strconv.Itoa(i))] = val
		}
	default:
		if prefix != "" {
			out[prefix] = scalarString(t)
		}
	}
}

func scalarString(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		return t
	case bool:
		return strconv.FormatBool(t)
	case json.Number:
		return t.String()
	case float64:
		return strconv.FormatFloat(t, 'f', -1, 64)
	case int:
		return strconv.Itoa(t)
	case int64:
		return strconv.FormatInt(t, 10)
	default:
		return fmt.Sprint(t)
	}
}

// filter keeps the parameter sets a label selector matches on their
// flattened keys.
func filter(params []Params, sel *metav1.LabelSelector) ([]Params, error) {
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	out := make([]Params, 0, len(params))
	for _, p := range params {
		if selector.Matches(labels.Set(Flatten(p))) {
			out = append(out, p)
		}
	}
	return out, nil
}

// mergeParams deep-merges b over a into a new map; b wins on conflicts.
func mergeParams(a, b Params) Params {
	out := make(Params, len(a)+len(b))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeParams(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// sortedKeys returns a map's keys in order, for deterministic output.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
