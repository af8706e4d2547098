package project

import (
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func teamA() *flotillav1.Project {
	return &flotillav1.Project{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}, Spec: flotillav1.ProjectSpec{
		SourceNamespaces: []string{"team-a", "team-a-*"},
		SourceRepos:      []string{"https://git.example/team-a/*"},
		Destinations: []flotillav1.ProjectDestination{
			{ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"env": "prod"}}, Namespaces: []string{"team-a-*"}},
			{Namespaces: []string{"team-a-sandbox"}},
		},
		ClusterResources:          []flotillav1.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRole"}},
		DeniedNamespacedResources: []flotillav1.GroupKind{{Group: "", Kind: "Secret"}, {Group: "networking.k8s.io", Kind: "*"}},
	}}
}

func TestCheckApplication(t *testing.T) {
	prod := map[string]string{"env": "prod"}
	for _, tc := range []struct {
		name, setNS, repo, ns string
		labels                map[string]string
		rule                  string // "" allowed
	}{
		{"allowed", "team-a", "https://git.example/team-a/web.git", "team-a-web", prod, ""},
		{"allowed without .git", "team-a-dev", "https://git.example/team-a/web", "team-a-web", prod, ""},
		{"a second destination", "team-a", "https://git.example/team-a/web", "team-a-sandbox", map[string]string{"env": "dev"}, ""},
		{"namespace not served", "team-b", "https://git.example/team-a/web", "team-a-web", prod, "sourceNamespaces"},
		{"another repository", "team-a", "https://git.example/team-b/web", "team-a-web", prod, "sourceRepos"},
		{"a deeper path is another repository", "team-a", "https://git.example/team-a/x/web", "team-a-web", prod, "sourceRepos"},
		{"a cluster no destination selects", "team-a", "https://git.example/team-a/web", "team-a-web", map[string]string{"env": "dev"}, "destinations"},
		{"an unknown cluster", "team-a", "https://git.example/team-a/web", "team-a-web", nil, "destinations"},
		{"a namespace outside", "team-a", "https://git.example/team-a/web", "kube-system", prod, "destinations"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: "web"}, Spec: flotillav1.ApplicationSpec{
				Source: flotillav1.ApplicationSource{RepoURL: tc.repo}, Destination: flotillav1.ApplicationDestination{Cluster: "c1", Namespace: tc.ns}}}
			err := CheckApplication(teamA(), tc.setNS, app, tc.labels)
			switch {
			case tc.rule == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.rule != "" && (err == nil || !IsViolation(err) || !strings.HasSuffix(err.Error(), "("+tc.rule+")")):
				t.Fatalf("got %v, want a violation of %s", err, tc.rule)
			}
		})
	}
}

func TestCheckObject(t *testing.T) {
	rules := Rules(teamA(), map[string]string{"env": "prod"})
	if strings.Join(rules.Namespaces, ",") != "team-a-*,team-a-sandbox" {
		t.Fatalf("namespaces for a prod cluster: %v", rules.Namespaces)
	}
	for _, tc := range []struct {
		group, kind, ns string
		namespaced      bool
		rule            string
	}{
		{"", "ConfigMap", "team-a-web", true, ""},
		{"", "Secret", "team-a-web", true, "deniedNamespacedResources"},
		{"networking.k8s.io", "Ingress", "team-a-web", true, "deniedNamespacedResources"},
		{"", "ConfigMap", "team-b", true, "destinations"},
		{"rbac.authorization.k8s.io", "ClusterRole", "", false, ""},
		{"rbac.authorization.k8s.io", "ClusterRoleBinding", "", false, "clusterResources"},
		{"", "Namespace", "", false, "clusterResources"},
	} {
		err := CheckObject(rules, tc.group, tc.kind, tc.ns, tc.namespaced)
		if (tc.rule == "") != (err == nil) || (err != nil && !strings.HasSuffix(err.Error(), "("+tc.rule+")")) {
			t.Errorf("%s/%s in %q: got %v, want %q", tc.group, tc.kind, tc.ns, err, tc.rule)
		}
	}
	if err := CheckSource(rules, "https://git.example/team-b/x"); err == nil {
		t.Error("another repository passed CheckSource")
	}
}

func TestParseKinds(t *testing.T) {
	got, err := ParseKinds([]string{"rbac.authorization.k8s.io/ClusterRoleBinding", " Secret ", ""})
	if err != nil || len(got) != 2 || got[0] != (flotillav1.GroupKind{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}) || got[1] != (flotillav1.GroupKind{Kind: "Secret"}) {
		t.Fatalf("%v %v", got, err)
	}
	if _, err := ParseKinds([]string{"apps/"}); err == nil {
		t.Fatal("apps/ (no kind) accepted")
	}
}

func TestDefaultAllowsAnything(t *testing.T) {
	p := Default("flotilla-system")
	app := &flotillav1.Application{Spec: flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: "ssh://git@x/y"},
		Destination: flotillav1.ApplicationDestination{Cluster: "c", Namespace: "anything"}}}
	if err := CheckApplication(p, "any-namespace", app, nil); err != nil {
		t.Fatal(err)
	}
	if err := CheckObject(Rules(p, nil), "apiextensions.k8s.io", "CustomResourceDefinition", "", false); err != nil {
		t.Fatal(err)
	}
}
