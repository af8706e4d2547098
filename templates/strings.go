package templates

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
)

// String is one compiled template string. A string without "{{" is kept
// literal and costs nothing to render.
type String struct {
	literal string
	tmpl    *template.Template
}

// CompileString parses s as a Go template with missingkey=error.
func CompileString(name, s string) (*String, error) {
	if !strings.Contains(s, "{{") {
		return &String{literal: s}, nil
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcMap).Parse(s)
	if err != nil {
		return nil, fmt.Errorf("parse template %s: %w", name, err)
	}
	if err := checkNesting(t); err != nil {
		return nil, fmt.Errorf("template %s: %w", name, err)
	}
	return &String{tmpl: t}, nil
}

// Bounds of one template execution.
const (
	// MaxOutput caps what one template string renders to.
	MaxOutput = 1 << 20
	// maxRangeDepth caps nested range loops (each over at most 1,000
	// items, see FuncMap), so one string cannot loop a billion times.
	maxRangeDepth = 2
)

// checkNesting refuses range loops nested deeper than maxRangeDepth.
func checkNesting(t *template.Template) error {
	var walk func(n parse.Node, depth int) error
	walk = func(n parse.Node, depth int) error {
		var lists []*parse.ListNode
		switch n := n.(type) {
		case *parse.ListNode:
			lists = append(lists, n)
		case *parse.IfNode:
			lists = append(lists, n.List, n.ElseList)
		case *parse.WithNode:
			lists = append(lists, n.List, n.ElseList)
		case *parse.RangeNode:
			if depth++; depth > maxRangeDepth {
				return fmt.Errorf("range loops nest at most %d deep", maxRangeDepth)
			}
			lists = append(lists, n.List, n.ElseList)
		}
		for _, l := range lists {
			if l == nil {
				continue
			}
			for _, c := range l.Nodes {
				if err := walk(c, depth); err != nil {
					return err
				}
			}
		}
		return nil
	}
	for _, tmpl := range t.Templates() {
		if tmpl.Tree != nil {
			if err := walk(tmpl.Tree.Root, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

// limitedWriter fails a template execution that writes more than MaxOutput.
type limitedWriter struct{ buf *bytes.Buffer }

var errOutputTooLarge = fmt.Errorf("the template renders more than %d bytes", MaxOutput)

func (w limitedWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > MaxOutput {
		return 0, errOutputTooLarge
	}
	return w.buf.Write(p)
}

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// Execute renders the string with params.
func (s *String) Execute(params map[string]any) (string, error) {
	if s.tmpl == nil {
		return s.literal, nil
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	defer bufPool.Put(buf)
	if err := s.tmpl.Execute(limitedWriter{buf}, params); err != nil {
		if errors.Is(err, errOutputTooLarge) {
			return "", errOutputTooLarge
		}
		return "", cleanExecError(err)
	}
	return buf.String(), nil
}

// ExecuteString compiles and renders s in one go (for strings rendered once).
func ExecuteString(name, s string, params map[string]any) (string, error) {
	c, err := CompileString(name, s)
	if err != nil {
		return "", err
	}
	return c.Execute(params)
}

// cleanExecError turns text/template's "template: x:1:5: executing "x" at
// <.foo>: map has no entry for key "foo"" into something a user can act on.
func cleanExecError(err error) error {
	msg := err.Error()
	if i := strings.Index(msg, "map has no entry for key "); i >= 0 {
		key := strings.Trim(msg[i+len("map has no entry for key "):], `"`)
		at := ""
		if j := strings.Index(msg, "at <"); j >= 0 {
			if k := strings.Index(msg[j:], ">"); k > 0 {
				at = msg[j+3 : j+k+1]
			}
		}
		return fmt.Errorf("parameter %q is not set (used as %s): check the generator's parameters or guard it with {{ if }} / default", key, at)
	}
	return err
}

// HasTemplate reports whether s contains template actions.
func HasTemplate(s string) bool { return strings.Contains(s, "{{") }
