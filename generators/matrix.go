package generators

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// Matrix combines its children's parameter sets (cartesian product). A
// later child's fields may use the parameters of the earlier ones, as in
// Argo CD: such a child is rendered and expanded once per combination so
// far; a child without templates is expanded once.
type Matrix struct{ engine *Engine }

var _ Generator = (*Matrix)(nil)

// Generate implements Generator.
func (m *Matrix) Generate(ctx context.Context, spec *Spec, parent Params) ([]Params, error) {
	if spec.Matrix == nil {
		return nil, errors.New("matrix generator without a matrix field")
	}
	children := spec.Matrix.Generators
	if len(children) < 2 {
		return nil, fmt.Errorf("a matrix needs two or more generators, got %d", len(children))
	}
	product := []Params{parent}
	if parent == nil {
		product = []Params{{}}
	}
	for i := range children {
		child := &children[i]
		kind, err := child.Kind()
		if err != nil {
			return nil, fmt.Errorf("generators[%d]: %w", i, err)
		}
		// A child without templates is expanded once; one with templates
		// once per combination of the children before it.
		// The first child of a top-level matrix has nothing to use.
		templated := false
		if i > 0 || parent != nil {
			if templated, err = isTemplated(child); err != nil {
				return nil, fmt.Errorf("generators[%d] (%s): %w", i, kind, err)
			}
		}
		var next, fixed []Params
		if !templated {
			if fixed, err = m.engine.Expand(ctx, child, parent); err != nil {
				return nil, fmt.Errorf("generators[%d] (%s): %w", i, kind, err)
			}
		}
		for _, left := range product {
			right := fixed
			if templated {
				if right, err = m.engine.expandWith(ctx, child, left); err != nil {
					return nil, fmt.Errorf("generators[%d] (%s): %w", i, kind, err)
				}
			}
			if len(next)+len(right) > m.engine.max {
				return nil, fmt.Errorf("%w: the matrix yields more than %d parameter sets", ErrTooMany, m.engine.max)
			}
			for _, r := range right {
				merged, conflict := mergeParams(left, r), overridden(left, r, "")
				if conflict != "" && !spec.Matrix.AllowOverrides {
					return nil, fmt.Errorf("generators[%d] (%s) sets parameter %q, which %s already set to another value: a matrix child may not override an earlier one's parameters (rename the key, or set allowOverrides: true)",
						i, kind, conflict, earlier(children[:i]))
				}
				next = append(next, merged)
			}
		}
		product = next
	}
	return product, nil
}

// overridden is the first parameter (dotted path) that b sets to another
// value than a already has, or "".
func overridden(a, b Params, prefix string) string {
	for _, k := range sortedKeys(b) {
		av, ok := a[k]
		if !ok {
			continue
		}
		am, aIsMap := av.(map[string]any)
		bm, bIsMap := b[k].(map[string]any)
		if aIsMap && bIsMap {
			if c := overridden(am, bm, prefix+k+"."); c != "" {
				return c
			}
			continue
		}
		if !reflect.DeepEqual(av, b[k]) {
			return prefix + k
		}
	}
	return ""
}

// earlier names the children before a conflicting one.
func earlier(children []Spec) string {
	names := make([]string, len(children))
	for i := range children {
		kind, _ := children[i].Kind()
		names[i] = fmt.Sprintf("generators[%d] (%s)", i, kind)
	}
	if len(names) == 1 {
		return names[0]
	}
	return "one of " + strings.Join(names, ", ")
}
