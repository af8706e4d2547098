package templates

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	jsonpatch "github.com/evanphx/json-patch/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// Template is an ApplicationSet's template, parsed once.
type Template struct {
	setName      string
	setNamespace string
	owner        *metav1.OwnerReference
	preserve     bool
	root         node
	patch        *String
}

// Compile parses every string of the set's template (and templatePatch).
func Compile(set *flotillav1.ApplicationSet) (*Template, error) {
	raw, err := json.Marshal(set.Spec.Template)
	if err != nil {
		return nil, fmt.Errorf("encode template: %w", err)
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return nil, fmt.Errorf("decode template: %w", err)
	}
	root, err := compileNode("template", generic)
	if err != nil {
		return nil, err
	}
	t := &Template{setName: set.Name, setNamespace: set.Namespace, root: root}
	if set.Spec.TemplatePatch != "" {
		if t.patch, err = CompileYAML("templatePatch", set.Spec.TemplatePatch); err != nil {
			return nil, err
		}
	}
	if set.Spec.SyncPolicy != nil {
		t.preserve = set.Spec.SyncPolicy.PreserveResourcesOnDeletion
	}
	if set.UID != "" {
		t.owner = metav1.NewControllerRef(set, flotillav1.GroupVersion.WithKind("ApplicationSet"))
	}
	return t, nil
}

// Render produces the Application for one parameter set and validates it.
func (t *Template) Render(params map[string]any) (*flotillav1.Application, error) {
	app, _, err := t.render(params)
	return app, err
}

// render is Render that also returns the rendered size.
func (t *Template) render(params map[string]any) (*flotillav1.Application, int64, error) {
	rendered, err := t.root.render(params)
	if err != nil {
		return nil, 0, err
	}
	raw, err := json.Marshal(rendered)
	if err != nil {
		return nil, 0, fmt.Errorf("encode rendered template: %w", err)
	}
	if t.patch != nil {
		if raw, err = t.applyPatch(raw, params); err != nil {
			return nil, 0, err
		}
	}
	var out flotillav1.ApplicationTemplate
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil {
		return nil, 0, fmt.Errorf("rendered template is not a valid Application: %w", err)
	}
	app := &flotillav1.Application{
		TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "Application"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        out.Metadata.Name,
			Namespace:   t.setNamespace,
			Labels:      out.Metadata.Labels,
			Annotations: out.Metadata.Annotations,
		},
		Spec: out.Spec,
	}
	if app.Labels == nil {
		app.Labels = map[string]string{}
	}
	app.Labels[flotillav1.LabelApplicationSet] = t.setName
	app.Labels[flotillav1.LabelCluster] = app.Spec.Destination.Cluster
	if t.owner != nil {
		app.OwnerReferences = []metav1.OwnerReference{*t.owner}
	}
	if t.preserve {
		if app.Spec.SyncPolicy == nil {
			app.Spec.SyncPolicy = &flotillav1.SyncPolicy{}
		}
		app.Spec.SyncPolicy.PreserveResourcesOnDeletion = true
	}
	if err := Validate(app); err != nil {
		return nil, 0, err
	}
	return app, int64(len(raw)), nil
}

func (t *Template) applyPatch(doc []byte, params map[string]any) ([]byte, error) {
	text, err := t.patch.Execute(params)
	if err != nil {
		return nil, fmt.Errorf("templatePatch: %w", err)
	}
	if err := yamlbound.Check([]byte(text), yamlbound.Default); err != nil {
		return nil, fmt.Errorf("templatePatch after rendering: %w", err)
	}
	patch, err := yaml.YAMLToJSON([]byte(text))
	if err != nil {
		return nil, fmt.Errorf("templatePatch is not valid YAML after rendering: %w", err)
	}
	if bytes.Equal(bytes.TrimSpace(patch), []byte("null")) {
		return doc, nil
	}
	if !bytes.HasPrefix(bytes.TrimSpace(patch), []byte("{")) {
		return nil, fmt.Errorf("templatePatch must render to a YAML mapping (with metadata and/or spec), got %.40q", text)
	}
	merged, err := jsonpatch.MergePatch(doc, patch)
	if err != nil {
		return nil, fmt.Errorf("apply templatePatch: %w", err)
	}
	return merged, nil
}

// Validate checks what the apiserver would otherwise reject later, so that a
// bad set fails before anything is written.
func Validate(app *flotillav1.Application) error {
	if errs := validation.IsDNS1123Subdomain(app.Name); len(errs) > 0 {
		return fmt.Errorf("application name %q is not a valid DNS-1123 name: %s", app.Name, strings.Join(errs, "; "))
	}
	if app.Spec.Destination.Cluster == "" {
		return fmt.Errorf("application %s: destination.cluster rendered empty: it must name a MemberCluster", app.Name)
	}
	if app.Spec.Source.RepoURL == "" {
		return fmt.Errorf("application %s: source.repoURL rendered empty", app.Name)
	}
	for k, v := range app.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("application %s: label key %q: %s", app.Name, k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("application %s: label %s=%q: %s", app.Name, k, v, strings.Join(errs, "; "))
		}
	}
	return nil
}

// Budget bounds one set's expansion: every Application's strings are
// bounded on their own (MaxOutput, nesting), and the whole expansion by time
// and by its rendered bytes, so a template cannot pin the hub or fill its
// memory however many parameter sets it meets.
type Budget struct {
	// Time caps the whole expansion (default DefaultExpansionTime).
	Time time.Duration
	// Bytes caps the sum of the rendered Applications (default
	// DefaultExpansionBytes).
	Bytes int64
}

// Default expansion budget: far above what 10,000 ordinary Applications
// need (~0.1 ms and ~1.5 KiB each).
const (
	DefaultExpansionTime  = 30 * time.Second
	DefaultExpansionBytes = 128 << 20
)

// ErrBudget means an expansion went over its Budget; ErrTimeBudget (which
// wraps it) that it ran out of time, which a less busy hub may not.
var (
	ErrBudget     = errors.New("over the expansion budget")
	ErrTimeBudget = fmt.Errorf("%w (time)", ErrBudget)
)

// Expand renders every parameter set within the default Budget.
func Expand(set *flotillav1.ApplicationSet, params []map[string]any) ([]*flotillav1.Application, error) {
	return ExpandWithin(set, params, Budget{})
}

// ExpandWithin renders every parameter set. It returns all Applications, or
// an error naming the parameter set that failed or the budget that ran out;
// never a partial list.
func ExpandWithin(set *flotillav1.ApplicationSet, params []map[string]any, b Budget) ([]*flotillav1.Application, error) {
	if b.Time <= 0 {
		b.Time = DefaultExpansionTime
	}
	if b.Bytes <= 0 {
		b.Bytes = DefaultExpansionBytes
	}
	start := time.Now()
	t, err := Compile(set)
	if err != nil {
		return nil, err
	}
	apps := make([]*flotillav1.Application, 0, len(params))
	seen := make(map[string]int, len(params))
	var size int64
	for i, p := range params {
		if elapsed := time.Since(start); elapsed > b.Time {
			return nil, fmt.Errorf("%w: rendering %d of %d parameter sets took %s, the limit is %s: simplify the template (loops, large strings)", ErrTimeBudget, i, len(params), elapsed.Round(time.Millisecond), b.Time)
		}
		app, n, err := t.render(p)
		if err != nil {
			return nil, fmt.Errorf("parameter set %d%s: %w", i, describe(p), err)
		}
		if size += n; size > b.Bytes {
			return nil, fmt.Errorf("%w: the first %d of %d Applications render to more than %d bytes: simplify the template (large strings)", ErrBudget, i+1, len(params), b.Bytes)
		}
		if j, dup := seen[app.Name]; dup {
			return nil, fmt.Errorf("parameter sets %d and %d both produce application %q: make the template's metadata.name unique (for example include {{ .name }})", j, i, app.Name)
		}
		seen[app.Name] = i
		apps = append(apps, app)
	}
	return apps, nil
}

// describe names a parameter set by its most telling keys.
func describe(p map[string]any) string {
	var parts []string
	for _, k := range []string{"name", "cluster"} {
		if v, ok := p[k].(string); ok {
			parts = append(parts, k+"="+v)
		}
	}
	if pv, ok := p["path"].(map[string]any); ok {
		if v, ok := pv["path"].(string); ok {
			parts = append(parts, "path.path="+v)
		}
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// node is a compiled piece of the template tree.
type node interface {
	render(params map[string]any) (any, error)
}

type literalNode struct{ v any }

func (n literalNode) render(map[string]any) (any, error) { return n.v, nil }

type stringNode struct {
	path string
	s    *String
}

func (n stringNode) render(params map[string]any) (any, error) {
	out, err := n.s.Execute(params)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", n.path, err)
	}
	return out, nil
}

type objectNode struct {
	path string
	keys []*String
	vals []node
}

func (n objectNode) render(params map[string]any) (any, error) {
	out := make(map[string]any, len(n.keys))
	for i, k := range n.keys {
		key, err := k.Execute(params)
		if err != nil {
			return nil, fmt.Errorf("%s (a key): %w", n.path, err)
		}
		v, err := n.vals[i].render(params)
		if err != nil {
			return nil, err
		}
		out[key] = v
	}
	return out, nil
}

type arrayNode struct{ items []node }

func (n arrayNode) render(params map[string]any) (any, error) {
	out := make([]any, len(n.items))
	for i, it := range n.items {
		v, err := it.render(params)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// compileNode compiles a decoded JSON value; subtrees without templates
// stay literal.
func compileNode(path string, v any) (node, error) {
	switch t := v.(type) {
	case string:
		if !HasTemplate(t) {
			return literalNode{t}, nil
		}
		s, err := CompileString(path, t)
		if err != nil {
			return nil, err
		}
		return stringNode{path: path, s: s}, nil
	case map[string]any:
		keys := make([]string, 0, len(t))
		for k := range t {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		n := objectNode{path: path}
		templated := false
		for _, k := range keys {
			ks, err := CompileString(path+"."+k+" (key)", k)
			if err != nil {
				return nil, err
			}
			child, err := compileNode(path+"."+k, t[k])
			if err != nil {
				return nil, err
			}
			if _, lit := child.(literalNode); !lit || ks.tmpl != nil {
				templated = true
			}
			n.keys = append(n.keys, ks)
			n.vals = append(n.vals, child)
		}
		if !templated {
			return literalNode{t}, nil
		}
		return n, nil
	case []any:
		n := arrayNode{}
		templated := false
		for i, it := range t {
			child, err := compileNode(fmt.Sprintf("%s[%d]", path, i), it)
			if err != nil {
				return nil, err
			}
			if _, lit := child.(literalNode); !lit {
				templated = true
			}
			n.items = append(n.items, child)
		}
		if !templated {
			return literalNode{t}, nil
		}
		return n, nil
	default:
		return literalNode{v}, nil
	}
}
