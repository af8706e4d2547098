package generators

import (
	"context"
	"errors"
	"fmt"
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
				next = append(next, mergeParams(left, r))
			}
		}
		product = next
	}
	return product, nil
}
