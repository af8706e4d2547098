// Package yamlbound refuses YAML that would blow up when parsed: alias
// ("billion laughs") bombs, documents with too many nodes, and nesting too
// deep. kyaml and sigs.k8s.io/yaml copy every alias they expand, so a
// 1 KiB file can take gigabytes there; Check parses into yaml.v3 nodes,
// which keep an alias as one pointer, and counts the nodes each document
// would expand to before anything else parses it.
package yamlbound

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"go.yaml.in/yaml/v3"
)

// Limits bound one YAML stream.
type Limits struct {
	// MaxNodes caps the nodes of the stream with every alias expanded.
	MaxNodes int64
	// MaxDepth caps the nesting, aliases expanded.
	MaxDepth int
}

// Default limits: far above any real manifest (a 1 MiB file of small
// objects holds a few hundred thousand nodes), far below a bomb.
var Default = Limits{MaxNodes: 2_000_000, MaxDepth: 200}

// ErrTooLarge is wrapped by every refusal.
var ErrTooLarge = errors.New("YAML too large when expanded")

// Check returns an error wrapping ErrTooLarge when the stream's documents,
// aliases expanded, exceed l. YAML that does not parse is not Check's
// business: whatever parses it next reports that.
func Check(data []byte, l Limits) error {
	_, err := Documents(data, l)
	return err
}

// Documents is Check that also counts the stream's non-empty documents
// (objects, for a manifest file), so a render can refuse too many objects
// before kustomize's costly build. A stream that does not parse counts
// the documents before the error.
func Documents(data []byte, l Limits) (int, error) {
	if l.MaxNodes == 0 {
		l = Default
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	m := &measure{limits: l, memo: map[*yaml.Node]shape{}, open: map[*yaml.Node]bool{}}
	docs := 0
	for doc := 1; ; doc++ {
		var n yaml.Node
		if err := dec.Decode(&n); err != nil {
			if errors.Is(err, io.EOF) {
				return docs, nil
			}
			return docs, nil //nolint:nilerr // a parse error is reported by the real parser
		}
		if len(n.Content) > 0 && n.Content[0].Kind != yaml.ScalarNode {
			docs++
		}
		s, err := m.shape(&n)
		if err != nil {
			return docs, fmt.Errorf("document %d: %w", doc, err)
		}
		m.total += s.nodes
		if m.total > l.MaxNodes {
			return docs, fmt.Errorf("%w: more than %d nodes (aliases expanded)", ErrTooLarge, l.MaxNodes)
		}
	}
}

type shape struct {
	nodes int64
	depth int
}

type measure struct {
	limits Limits
	total  int64
	memo   map[*yaml.Node]shape
	open   map[*yaml.Node]bool // on the current path: an alias back to one is a cycle
}

func (m *measure) shape(n *yaml.Node) (shape, error) {
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return shape{nodes: 1, depth: 1}, nil
		}
		n = n.Alias
	}
	if s, ok := m.memo[n]; ok {
		return s, nil
	}
	if m.open[n] {
		return shape{}, fmt.Errorf("%w: an alias refers to a node that contains it", ErrTooLarge)
	}
	m.open[n] = true
	defer delete(m.open, n)
	s := shape{nodes: 1, depth: 1}
	for _, c := range n.Content {
		cs, err := m.shape(c)
		if err != nil {
			return shape{}, err
		}
		s.nodes += cs.nodes
		s.depth = max(s.depth, cs.depth+1)
		if s.nodes > m.limits.MaxNodes {
			return shape{}, fmt.Errorf("%w: more than %d nodes (aliases expanded)", ErrTooLarge, m.limits.MaxNodes)
		}
		if s.depth > m.limits.MaxDepth {
			return shape{}, fmt.Errorf("%w: nested deeper than %d levels", ErrTooLarge, m.limits.MaxDepth)
		}
	}
	m.memo[n] = s
	return s, nil
}
