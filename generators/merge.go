package generators

import (
	"context"
	"errors"
	"fmt"
	"strings"
)

// Merge joins its children's parameter sets on MergeKeys: the first child
// is the base; a later child's set overrides the base set with equal merge
// keys. Sets of later children that match no base set are dropped, as in
// Argo CD.
type Merge struct{ engine *Engine }

var _ Generator = (*Merge)(nil)

// Generate implements Generator.
func (m *Merge) Generate(ctx context.Context, spec *Spec, parent Params) ([]Params, error) {
	if spec.Merge == nil {
		return nil, errors.New("merge generator without a merge field")
	}
	children, keys := spec.Merge.Generators, spec.Merge.MergeKeys
	if len(children) < 2 {
		return nil, fmt.Errorf("a merge needs two or more generators, got %d", len(children))
	}
	if len(keys) == 0 {
		return nil, errors.New("a merge needs at least one merge key")
	}
	var base []Params
	index := map[string]int{}
	for i := range children {
		kind, err := children[i].Kind()
		if err != nil {
			return nil, fmt.Errorf("generators[%d]: %w", i, err)
		}
		sets, err := m.engine.expandWith(ctx, &children[i], parent)
		if err != nil {
			return nil, fmt.Errorf("generators[%d] (%s): %w", i, kind, err)
		}
		seen := map[string]bool{}
		for j, p := range sets {
			key, err := mergeKey(p, keys)
			if err != nil {
				return nil, fmt.Errorf("generators[%d] (%s) parameter set %d: %w", i, kind, j, err)
			}
			if seen[key] {
				return nil, fmt.Errorf("generators[%d] (%s): two parameter sets share merge keys %s: merge keys must be unique within each generator", i, kind, key)
			}
			seen[key] = true
			if i == 0 {
				index[key] = len(base)
				base = append(base, p)
				continue
			}
			if at, ok := index[key]; ok {
				base[at] = mergeParams(base[at], p)
			}
		}
	}
	return base, nil
}

func mergeKey(p Params, keys []string) (string, error) {
	flat := Flatten(p)
	parts := make([]string, len(keys))
	for i, k := range keys {
		v, ok := flat[k]
		if !ok {
			return "", fmt.Errorf("merge key %q is not a parameter (have %s)", k, strings.Join(sortedKeys(flat), ", "))
		}
		parts[i] = k + "=" + v
	}
	return strings.Join(parts, ","), nil
}
