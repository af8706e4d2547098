package templates_test

import (
	"testing"

	"k8s.io/apimachinery/pkg/util/validation"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/templates"
)

// FuzzRender feeds arbitrary templates and parameter values through
// Compile and Render: it must never panic, and whatever it returns without
// an error must be a valid Application.
func FuzzRender(f *testing.F) {
	seeds := []struct{ name, path, value string }{
		{"{{ .name }}-guestbook", "apps/{{ .name }}", "prod-eu-1"},
		{"{{ .missing }}", "x", "a"},
		{"{{ .name | upper }}", "{{ toYaml . }}", "Web_Shop"},
		{"{{ normalize .name }}", "{{ toJson . }}", "ÄÖ ü"},
		{"{{", "}}", ""},
		{"{{ range $i, $e := .name }}{{ $e }}{{ end }}", "", "abc"},
		{"{{ template \"x\" }}", "{{ define \"x\" }}y{{ end }}", "z"},
		{"a{{ printf \"%0999999d\" 1 | trunc 5 }}", "", "v"},
		{"{{ .name }}", "{{ .name }}", "x\n- injected: true"},
	}
	for _, s := range seeds {
		f.Add(s.name, s.path, s.value)
	}
	f.Fuzz(func(t *testing.T, nameTmpl, pathTmpl, value string) {
		set := &flotillav1.ApplicationSet{}
		set.Name, set.Namespace = "s", "ns"
		set.Spec.Template.Metadata.Name = nameTmpl
		set.Spec.Template.Spec.Source.RepoURL = "https://git.example/r.git"
		set.Spec.Template.Spec.Source.Path = pathTmpl
		set.Spec.Template.Spec.Destination.Cluster = "{{ .name }}"
		set.Spec.TemplatePatch = "metadata:\n  annotations:\n    v: {{ toJson .name }}\n"
		tmpl, err := templates.Compile(set)
		if err != nil {
			return
		}
		app, err := tmpl.Render(map[string]any{"name": value})
		if err != nil {
			return
		}
		if errs := validation.IsDNS1123Subdomain(app.Name); len(errs) > 0 {
			t.Fatalf("rendered an invalid name %q without an error", app.Name)
		}
		if app.Spec.Destination.Cluster != value {
			t.Fatalf("destination.cluster = %q, want %q", app.Spec.Destination.Cluster, value)
		}
		if app.Annotations["v"] != value {
			t.Fatalf("templatePatch annotation = %q, want %q", app.Annotations["v"], value)
		}
		if app.Namespace != "ns" || app.Labels[flotillav1.LabelApplicationSet] != "s" {
			t.Fatalf("namespace or set label lost: %+v", app.ObjectMeta)
		}
	})
}
