package templates

import (
	"encoding/json"
	"fmt"
	"strings"
	"text/template"
	"text/template/parse"
)

// CompileYAML parses s (a templatePatch) so that every value an action
// prints lands as one YAML scalar, never as YAML text: a parameter holding
// a newline, "key: value" or a flow collection cannot add or change keys.
// Inside "..." or '...' a value is escaped for that quoting; elsewhere a
// value that would not stay a plain scalar is printed double-quoted.
// Actions ending in toYaml, toJson, indent or nindent print structure on
// purpose and are left alone (their values are marshalled, not spliced).
func CompileYAML(name, s string) (*String, error) {
	if !strings.Contains(s, "{{") {
		return &String{literal: s}, nil
	}
	fm := FuncMap()
	fm[scalarPlain], fm[scalarInner], fm[scalarDouble], fm[scalarSingle] = plainScalar, innerScalar, doubleQuoted, singleQuoted
	t, err := template.New(name).Option("missingkey=error").Funcs(fm).Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	if err := checkNesting(t); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	for _, tmpl := range t.Templates() {
		if tmpl.Tree != nil {
			quoteActions(tmpl.Tree, tmpl.Tree.Root)
		}
	}
	return &String{tmpl: t}, nil
}

const (
	scalarInner  = "flotillaYAMLInner"
	scalarPlain  = "flotillaYAMLScalar"
	scalarDouble = "flotillaYAMLDoubleQuoted"
	scalarSingle = "flotillaYAMLSingleQuoted"
)

// structural are the functions whose output is YAML by intent.
var structural = map[string]bool{"toYaml": true, "toJson": true, "indent": true, "nindent": true, "toPrettyJson": true, "toRawJson": true}

// quoteActions appends the right escaping function to every printing action
// of list, looking at the text around it for an opening quote.
func quoteActions(tree *parse.Tree, list *parse.ListNode) {
	if list == nil {
		return
	}
	for i, n := range list.Nodes {
		switch n := n.(type) {
		case *parse.ActionNode:
			if len(n.Pipe.Decl) > 0 || endsStructural(n.Pipe) {
				continue
			}
			before, after := lineAround(list.Nodes, i)
			fn := scalarInner // inside a plain scalar: must not end it
			switch {
			case strings.Count(before, `"`)%2 == 1:
				fn = scalarDouble
			case strings.Count(before, "'")%2 == 1:
				fn = scalarSingle
			case wholeValue(before, after):
				fn = scalarPlain
			}
			n.Pipe.Cmds = append(n.Pipe.Cmds, &parse.CommandNode{NodeType: parse.NodeCommand, Pos: n.Pos,
				Args: []parse.Node{parse.NewIdentifier(fn).SetTree(tree).SetPos(n.Pos)}})
		case *parse.IfNode:
			quoteActions(tree, n.List)
			quoteActions(tree, n.ElseList)
		case *parse.RangeNode:
			quoteActions(tree, n.List)
			quoteActions(tree, n.ElseList)
		case *parse.WithNode:
			quoteActions(tree, n.List)
			quoteActions(tree, n.ElseList)
		}
	}
}

func endsStructural(p *parse.PipeNode) bool {
	last := p.Cmds[len(p.Cmds)-1]
	id, ok := last.Args[0].(*parse.IdentifierNode)
	return ok && structural[id.Ident]
}

// lineAround is the template text on the action's line before and after it
// (other actions on the line count as one character).
func lineAround(nodes []parse.Node, i int) (before, after string) {
	for j := i - 1; j >= 0; j-- {
		t, ok := nodes[j].(*parse.TextNode)
		if !ok {
			before = "x" + before
			continue
		}
		text := string(t.Text)
		if k := strings.LastIndexByte(text, '\n'); k >= 0 {
			before = text[k+1:] + before
			break
		}
		before = text + before
	}
	for j := i + 1; j < len(nodes); j++ {
		t, ok := nodes[j].(*parse.TextNode)
		if !ok {
			after += "x"
			continue
		}
		text := string(t.Text)
		if k := strings.IndexByte(text, '\n'); k >= 0 {
			after += text[:k]
			break
		}
		after += text
	}
	return before, after
}

// wholeValue: the action is a mapping value or list item on its own
// ("key: {{ .x }}", "- {{ .x }}"), so it may be printed quoted.
func wholeValue(before, after string) bool {
	b := strings.TrimSpace(before)
	a := strings.TrimSpace(after)
	return (b == "" || strings.HasSuffix(b, ":") || strings.HasSuffix(b, "-")) && (a == "" || strings.HasPrefix(a, "#"))
}

func str(v any) string {
	if s, ok := v.(string); ok {
		return s
	}
	return fmt.Sprint(v)
}

// plainScalar prints v as is when YAML reads it back as the same plain
// scalar on one line, and double-quoted otherwise.
func plainScalar(v any) string {
	s := str(v)
	if s == "" || (!strings.ContainsAny(s, "\n\r\t") && !strings.ContainsAny(s[:1], "-?:,[]{}#&*!|>'\"%@` ") &&
		!strings.Contains(s, ": ") && !strings.Contains(s, " #") && !strings.HasSuffix(s, ":") && !strings.HasSuffix(s, " ")) {
		return s
	}
	raw, _ := json.Marshal(s) // a JSON string is a YAML double-quoted scalar
	return string(raw)
}

// innerScalar prints v inside a plain scalar ("path: apps/{{ .x }}"): it
// must not end the scalar, so a value that would is an error.
func innerScalar(v any) (string, error) {
	s := str(v)
	if strings.ContainsAny(s, "\n\r") || strings.Contains(s, ": ") || strings.Contains(s, " #") || strings.HasSuffix(s, ":") {
		return "", fmt.Errorf("the value %q cannot be placed inside a plain YAML scalar: quote that scalar in templatePatch", s)
	}
	return s, nil
}

// doubleQuoted escapes v for the inside of a "..." scalar.
func doubleQuoted(v any) string {
	raw, _ := json.Marshal(str(v))
	return string(raw[1 : len(raw)-1])
}

// singleQuoted escapes v for the inside of a '...' scalar: quotes doubled,
// line breaks turned into the space YAML would fold them into.
func singleQuoted(v any) string {
	s := strings.NewReplacer("'", "''", "\n", " ", "\r", " ").Replace(str(v))
	return s
}
