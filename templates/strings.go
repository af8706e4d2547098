package templates

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"text/template"
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
	return &String{tmpl: t}, nil
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
	if err := s.tmpl.Execute(buf, params); err != nil {
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
