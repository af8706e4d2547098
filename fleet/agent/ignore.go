package agent

import (
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// ignoreRules are an Application's ignoreDifferences.
type ignoreRules []flotillav1.ResourceIgnoreDifferences

// respect returns what to apply for o given its live object: o with every
// ignored field set to its live value (or left out where the live object
// has none), so that neither a drift check nor an apply touches a field
// another writer owns. It returns o itself when no rule applies or
// nothing is live yet (a new object is created as Git says).
func (rs ignoreRules) respect(o, live *unstructured.Unstructured) *unstructured.Unstructured {
	if live == nil || len(rs) == 0 {
		return o
	}
	var out *unstructured.Unstructured
	for _, r := range rs {
		if !matches(r, o) {
			continue
		}
		if out == nil {
			out = o.DeepCopy()
		}
		for _, p := range r.JSONPointers {
			if steps, ok := pointerSteps(p); ok {
				takeLive(out.Object, live.Object, steps)
			}
		}
		for _, m := range r.ManagedFieldsManagers {
			for _, steps := range ownedBy(live, m) {
				takeLive(out.Object, live.Object, steps)
			}
		}
	}
	if out == nil {
		return o
	}
	return out
}

func matches(r flotillav1.ResourceIgnoreDifferences, o *unstructured.Unstructured) bool {
	gvk := o.GroupVersionKind()
	return gvk.Group == r.Group && gvk.Kind == r.Kind && (r.Name == "" || r.Name == o.GetName()) &&
		(r.Namespace == "" || r.Namespace == o.GetNamespace())
}

// step is one step into an object: a map key, a list index, or the list
// element a predicate picks (an associative list's keys, a set's value).
type step struct {
	key   string
	index int
	pick  func(any) bool
}

// pointerSteps parses an RFC 6901 JSON pointer ("/spec/replicas").
func pointerSteps(p string) ([]step, bool) {
	if !strings.HasPrefix(p, "/") {
		return nil, false
	}
	var steps []step
	for _, tok := range strings.Split(p[1:], "/") {
		tok = strings.ReplaceAll(strings.ReplaceAll(tok, "~1", "/"), "~0", "~")
		i, err := strconv.Atoi(tok)
		if err != nil {
			i = -1
		}
		steps = append(steps, step{key: tok, index: i})
	}
	return steps, len(steps) > 0
}

// ownedBy lists the leaf fields manager owns on live, as steps.
func ownedBy(live *unstructured.Unstructured, manager string) [][]step {
	var out [][]step
	for _, mf := range live.GetManagedFields() {
		if mf.Manager != manager || mf.FieldsV1 == nil || mf.Subresource != "" {
			continue
		}
		set := &fieldpath.Set{}
		if err := set.FromJSON(mf.FieldsV1.GetRawReader()); err != nil {
			continue
		}
		set.Leaves().Iterate(func(p fieldpath.Path) {
			if steps, ok := pathSteps(p); ok {
				out = append(out, steps)
			}
		})
	}
	return out
}

// pathSteps turns a managed-fields path into steps.
func pathSteps(p fieldpath.Path) ([]step, bool) {
	steps := make([]step, 0, len(p))
	for _, el := range p {
		switch {
		case el.FieldName != nil:
			steps = append(steps, step{key: *el.FieldName, index: -1})
		case el.Key != nil:
			keys := *el.Key
			steps = append(steps, step{index: -1, pick: func(item any) bool {
				m, ok := item.(map[string]any)
				if !ok {
					return false
				}
				for _, f := range keys {
					v, found := m[f.Name]
					if !found || !value.Equals(value.NewValueInterface(v), f.Value) {
						return false
					}
				}
				return true
			}})
		case el.Value != nil:
			want := *el.Value
			steps = append(steps, step{index: -1, pick: func(item any) bool { return value.Equals(value.NewValueInterface(item), want) }})
		case el.Index != nil:
			steps = append(steps, step{index: *el.Index})
		default:
			return nil, false
		}
	}
	return steps, len(steps) > 0
}

// takeLive sets the field steps name in desired to its value in live, or
// removes it from desired when live has none.
func takeLive(desired, live map[string]any, steps []step) {
	if v, ok := getAt(live, steps); ok {
		setAt(desired, steps, runtime.DeepCopyJSONValue(v))
		return
	}
	deleteAt(desired, steps)
}

// child returns the value one step below cur.
func child(cur any, s step) (any, bool) {
	switch c := cur.(type) {
	case map[string]any:
		v, ok := c[s.key]
		return v, ok
	case []any:
		if i := s.find(c); i >= 0 {
			return c[i], true
		}
	}
	return nil, false
}

// find is the index of the list element s names, or -1.
func (s step) find(list []any) int {
	if s.pick != nil {
		for i, item := range list {
			if s.pick(item) {
				return i
			}
		}
		return -1
	}
	if s.index >= 0 && s.index < len(list) {
		return s.index
	}
	return -1
}

func getAt(obj map[string]any, steps []step) (any, bool) {
	var cur any = obj
	for _, s := range steps {
		next, ok := child(cur, s)
		if !ok {
			return nil, false
		}
		cur = next
	}
	return cur, true
}

// setAt sets a value, creating missing maps on the way; a missing list
// element is not created (the field is left as it is).
func setAt(obj map[string]any, steps []step, v any) {
	var cur any = obj
	for i, s := range steps {
		last := i == len(steps)-1
		switch c := cur.(type) {
		case map[string]any:
			if last {
				c[s.key] = v
				return
			}
			next, ok := c[s.key]
			if !ok {
				if steps[i+1].pick != nil || steps[i+1].index >= 0 && steps[i+1].key == "" {
					return
				}
				next = map[string]any{}
				c[s.key] = next
			}
			cur = next
		case []any:
			j := s.find(c)
			if j < 0 {
				return
			}
			if last {
				c[j] = v
				return
			}
			cur = c[j]
		default:
			return
		}
	}
}

func deleteAt(obj map[string]any, steps []step) {
	parent, ok := getAt(obj, steps[:len(steps)-1])
	if !ok {
		return
	}
	if m, ok := parent.(map[string]any); ok {
		delete(m, steps[len(steps)-1].key)
	}
}
