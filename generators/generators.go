// Package generators expands an ApplicationSet's generators into parameter
// sets. The same code backs the hub controller and the offline
// `flotilla generate`.
//
// The contract is fail-safe: Generate returns either the complete list of
// parameter sets or an error that names the generator and the reason, never
// a partial list.
package generators

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/templates"
)

// Params is one parameter set: nested maps as a template author reads them
// ({{ .metadata.labels.env }}, {{ .path.basename }}).
type Params = map[string]any

// DefaultMaxParams caps the parameter sets (hence Applications) of one set.
const DefaultMaxParams = 10000

// ErrTemplate marks errors of the set's template (not of its generators):
// a user's mistake that retrying cannot fix.
var ErrTemplate = errors.New("template")

// ErrTooMany means a set would produce more parameter sets than allowed.
var ErrTooMany = errors.New("too many parameter sets")

// Spec is one generator entry, whatever its nesting level.
type Spec struct {
	List     *flotillav1.ListGenerator     `json:"list,omitempty"`
	Clusters *flotillav1.ClustersGenerator `json:"clusters,omitempty"`
	Git      *flotillav1.GitGenerator      `json:"git,omitempty"`
	Matrix   *Combination                  `json:"matrix,omitempty"`
	Merge    *Combination                  `json:"merge,omitempty"`
	Selector *metav1.LabelSelector         `json:"selector,omitempty"`
}

// Combination holds the children of a matrix or merge.
type Combination struct {
	Generators     []Spec   `json:"generators"`
	MergeKeys      []string `json:"mergeKeys,omitempty"`
	AllowOverrides bool     `json:"allowOverrides,omitempty"`
}

// Generator yields the parameter sets of one kind of generator entry.
// parent holds the parameters an enclosing matrix offers this entry (nil at
// the top level); the entry's own fields are already rendered with them.
type Generator interface {
	Generate(ctx context.Context, spec *Spec, parent Params) ([]Params, error)
}

// Options configure an Engine.
type Options struct {
	// Clusters lists MemberClusters for the clusters generator.
	Clusters ClusterSource
	// Git reads repositories for the git generators.
	Git GitSource
	// MaxParams caps a set's parameter sets (default 10,000).
	MaxParams int
	// Budget bounds each set's template expansion (time, rendered bytes).
	Budget templates.Budget
}

// Engine expands generators with a registry of Generators by kind.
type Engine struct {
	max      int
	budget   templates.Budget
	registry map[string]Generator
}

// New builds an Engine with the list, clusters, git, matrix and merge
// generators.
func New(opts Options) *Engine {
	e := &Engine{max: opts.MaxParams, budget: opts.Budget, registry: map[string]Generator{}}
	if e.max <= 0 {
		e.max = DefaultMaxParams
	}
	e.Register("list", &List{})
	e.Register("clusters", &Clusters{Source: opts.Clusters})
	e.Register("git", &Git{Source: opts.Git})
	e.Register("matrix", &Matrix{engine: e})
	e.Register("merge", &Merge{engine: e})
	return e
}

// Register adds or replaces the Generator for a kind.
func (e *Engine) Register(kind string, g Generator) { e.registry[kind] = g }

// Kind names the one generator kind a Spec sets.
func (s *Spec) Kind() (string, error) {
	var kinds []string
	if s.List != nil {
		kinds = append(kinds, "list")
	}
	if s.Clusters != nil {
		kinds = append(kinds, "clusters")
	}
	if s.Git != nil {
		kinds = append(kinds, "git")
	}
	if s.Matrix != nil {
		kinds = append(kinds, "matrix")
	}
	if s.Merge != nil {
		kinds = append(kinds, "merge")
	}
	if len(kinds) != 1 {
		return "", fmt.Errorf("a generator entry needs exactly one of list, clusters, git, matrix or merge, got %d %v", len(kinds), kinds)
	}
	return kinds[0], nil
}

// Generate expands every top-level generator of a set and concatenates the
// results.
func (e *Engine) Generate(ctx context.Context, gens []flotillav1.ApplicationSetGenerator) ([]Params, error) {
	var all []Params
	for i := range gens {
		spec, err := FromAPI(&gens[i])
		if err != nil {
			return nil, fmt.Errorf("generators[%d]: %w", i, err)
		}
		kind, _ := spec.Kind()
		params, err := e.Expand(ctx, spec, nil)
		if err != nil {
			return nil, fmt.Errorf("generators[%d] (%s): %w", i, kind, err)
		}
		if len(all)+len(params) > e.max {
			return nil, fmt.Errorf("generators[%d] (%s): %w: %d, the limit is %d per ApplicationSet", i, kind, ErrTooMany, len(all)+len(params), e.max)
		}
		all = append(all, params...)
	}
	return all, nil
}

// Expand runs one entry: dispatch by kind, then the entry's selector.
func (e *Engine) Expand(ctx context.Context, spec *Spec, parent Params) ([]Params, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	kind, err := spec.Kind()
	if err != nil {
		return nil, err
	}
	g, ok := e.registry[kind]
	if !ok {
		return nil, fmt.Errorf("no generator registered for %q", kind)
	}
	params, err := g.Generate(ctx, spec, parent)
	if err != nil {
		return nil, err
	}
	if len(params) > e.max {
		return nil, fmt.Errorf("%w: %s yields %d, the limit is %d per ApplicationSet", ErrTooMany, kind, len(params), e.max)
	}
	if spec.Selector != nil {
		if params, err = filter(params, spec.Selector); err != nil {
			return nil, err
		}
	}
	return params, nil
}

// FromAPI converts any API generator type (top-level, nested or terminal)
// to a Spec. The API types share field names, so JSON carries them over.
func FromAPI(v any) (*Spec, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode generator: %w", err)
	}
	spec := &Spec{}
	if err := json.Unmarshal(raw, spec); err != nil {
		return nil, fmt.Errorf("decode generator: %w", err)
	}
	if _, err := spec.Kind(); err != nil {
		return nil, err
	}
	return spec, nil
}

// expandWith expands a child entry with the parameters an enclosing matrix
// (or its earlier children) offer it. A terminal child's templated fields
// are rendered with them first; a matrix or merge child receives them as
// its parent and renders its own children.
func (e *Engine) expandWith(ctx context.Context, child *Spec, offered Params) ([]Params, error) {
	if offered == nil || child.Matrix != nil || child.Merge != nil {
		return e.Expand(ctx, child, offered)
	}
	rendered, err := renderSpec(child, offered)
	if err != nil {
		return nil, err
	}
	return e.Expand(ctx, rendered, offered)
}

// renderSpec renders every string of a child spec with the parameters a
// matrix offers it, as Argo CD's matrix does. A clusters generator's values
// are left alone here: they are rendered later with the cluster's parameters
// merged over the offered ones.
func renderSpec(spec *Spec, params Params) (*Spec, error) {
	raw, values, err := specJSON(spec)
	if err != nil {
		return nil, err
	}
	if !templates.HasTemplate(string(raw)) {
		return spec, nil
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, err
	}
	rendered, err := renderValue("generator", generic, params)
	if err != nil {
		return nil, err
	}
	if raw, err = json.Marshal(rendered); err != nil {
		return nil, err
	}
	out := &Spec{}
	if err := json.Unmarshal(raw, out); err != nil {
		return nil, fmt.Errorf("rendered generator is invalid: %w", err)
	}
	if out.Clusters != nil {
		out.Clusters.Values = values
	}
	return out, nil
}

// isTemplated reports whether a spec uses templates outside clusters values.
func isTemplated(s *Spec) (bool, error) {
	raw, _, err := specJSON(s)
	if err != nil {
		return false, err
	}
	return templates.HasTemplate(string(raw)), nil
}

// specJSON encodes a spec without its clusters values, returned apart.
func specJSON(s *Spec) ([]byte, map[string]string, error) {
	var values map[string]string
	if s.Clusters != nil && s.Clusters.Values != nil {
		cp := *s
		cl := *s.Clusters
		values, cl.Values = cl.Values, nil
		cp.Clusters = &cl
		s = &cp
	}
	raw, err := json.Marshal(s)
	return raw, values, err
}

func renderValue(path string, v any, params Params) (any, error) {
	switch t := v.(type) {
	case string:
		out, err := templates.ExecuteString(path, t, params)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		return out, nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, val := range t {
			r, err := renderValue(path+"."+k, val, params)
			if err != nil {
				return nil, err
			}
			out[k] = r
		}
		return out, nil
	case []any:
		out := make([]any, len(t))
		for i, val := range t {
			r, err := renderValue(fmt.Sprintf("%s[%d]", path, i), val, params)
			if err != nil {
				return nil, err
			}
			out[i] = r
		}
		return out, nil
	default:
		return v, nil
	}
}

// Applications expands a set into the exact Applications it should produce:
// its generators' parameter sets rendered through its template. It returns
// all of them or an error, never a partial list.
func (e *Engine) Applications(ctx context.Context, set *flotillav1.ApplicationSet) ([]*flotillav1.Application, error) {
	params, err := e.Generate(ctx, set.Spec.Generators)
	if err != nil {
		return nil, err
	}
	apps, err := templates.ExpandWithin(set, params, e.budget)
	if errors.Is(err, templates.ErrTimeBudget) {
		return nil, err // may pass on a less busy hub: retried
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrTemplate, err)
	}
	return apps, nil
}
