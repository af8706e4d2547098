// Package project decides what a Project allows: the hub checks every
// Application against its Project before writing or delivering it, and the
// agent checks the rules delivered with each spoke copy again, object by
// object.
package project

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// Name is an Application's project ("default" when empty).
func Name(app *flotillav1.Application) string {
	if app.Spec.Project == "" {
		return flotillav1.DefaultProject
	}
	return app.Spec.Project
}

// Default is the project `flotilla install` and the hub create when it is
// missing: today's single-team behaviour (anything, anywhere, from any
// namespace), applied as the agent's default ServiceAccount.
func Default(namespace string) *flotillav1.Project {
	return &flotillav1.Project{
		ObjectMeta: metav1.ObjectMeta{Name: flotillav1.DefaultProject, Namespace: namespace},
		Spec: flotillav1.ProjectSpec{
			Description:      "Anything, anywhere: the single-team default. Narrow it, or give teams their own Projects.",
			SourceNamespaces: []string{"*"},
			SourceRepos:      []string{"*"},
			Destinations:     []flotillav1.ProjectDestination{{Namespaces: []string{"*"}}},
			ClusterResources: []flotillav1.GroupKind{{Group: "*", Kind: "*"}},
		},
	}
}

// Violation is a broken project rule, in words that name the rule.
type Violation struct {
	Project, Rule, Message string
}

func (v *Violation) Error() string {
	return fmt.Sprintf("project %s: %s (%s)", v.Project, v.Message, v.Rule)
}

func violation(p, rule, format string, args ...any) error {
	return &Violation{Project: p, Rule: rule, Message: fmt.Sprintf(format, args...)}
}

// Glob reports whether s matches any of the globs (path.Match; "*" alone matches anything).
func Glob(globs []string, s string) bool {
	for _, g := range globs {
		if g == "*" || g == s {
			return true
		}
		if ok, err := path.Match(g, s); err == nil && ok {
			return true
		}
	}
	return false
}

// repoMatches also accepts the URL with or without ".git" and a trailing slash.
func repoMatches(globs []string, url string) bool {
	u := strings.TrimSuffix(strings.TrimSuffix(url, "/"), ".git")
	return Glob(globs, url) || Glob(globs, u) || Glob(globs, u+".git")
}

// CheckApplication checks a hub Application (of a set in setNamespace, or
// hand-made there) against p: the namespace may use it, the repository is
// a source, and some destination selects the cluster (labels; nil: the
// cluster is unknown) and allows the namespace.
func CheckApplication(p *flotillav1.Project, setNamespace string, app *flotillav1.Application, clusterLabels map[string]string) error {
	name := p.Name
	if !Glob(p.Spec.SourceNamespaces, setNamespace) {
		return violation(name, "sourceNamespaces", "namespace %s may not use it (allowed: %s)", setNamespace, strings.Join(p.Spec.SourceNamespaces, ", "))
	}
	repo := app.Spec.Source.RepoURL
	if !repoMatches(p.Spec.SourceRepos, repo) {
		return violation(name, "sourceRepos", "Application %s deploys from %s, which is not one of its sourceRepos (%s)", app.Name, repo, strings.Join(p.Spec.SourceRepos, ", "))
	}
	cluster, ns := app.Spec.Destination.Cluster, app.Spec.Destination.Namespace
	clusterOK := false
	for _, d := range p.Spec.Destinations {
		sel, err := metav1.LabelSelectorAsSelector(&d.ClusterSelector)
		if err != nil || !sel.Matches(labels.Set(clusterLabels)) {
			continue
		}
		clusterOK = true
		if ns == "" || Glob(d.Namespaces, ns) {
			return nil
		}
	}
	if !clusterOK {
		return violation(name, "destinations", "Application %s deploys to cluster %s, which no destination's clusterSelector selects", app.Name, cluster)
	}
	return violation(name, "destinations", "Application %s deploys to namespace %s on cluster %s, which no destination allows there", app.Name, ns, cluster)
}

// Rules are p's rules for one Application, as delivered to its spoke: the
// namespaces of the destinations that select its cluster.
func Rules(p *flotillav1.Project, clusterLabels map[string]string) flotillav1.ProjectRules {
	r := flotillav1.ProjectRules{Name: p.Name, SourceRepos: p.Spec.SourceRepos, ClusterResources: p.Spec.ClusterResources,
		DeniedNamespacedResources: p.Spec.DeniedNamespacedResources, ServiceAccount: p.Spec.ServiceAccount}
	for _, d := range p.Spec.Destinations {
		if sel, err := metav1.LabelSelectorAsSelector(&d.ClusterSelector); err == nil && sel.Matches(labels.Set(clusterLabels)) {
			r.Namespaces = append(r.Namespaces, d.Namespaces...)
		}
	}
	return r
}

// kindIn reports whether group/kind is in the list ("*" matches any).
func kindIn(list []flotillav1.GroupKind, group, kind string) bool {
	for _, gk := range list {
		if (gk.Group == "*" || gk.Group == group) && (gk.Kind == "*" || gk.Kind == kind) {
			return true
		}
	}
	return false
}

// CheckSource checks an Application's repository against delivered rules.
func CheckSource(r flotillav1.ProjectRules, repoURL string) error {
	if !repoMatches(r.SourceRepos, repoURL) {
		return violation(r.Name, "sourceRepos", "%s is not one of its sourceRepos (%s)", repoURL, strings.Join(r.SourceRepos, ", "))
	}
	return nil
}

// CheckObject checks one object the agent is about to apply: a
// cluster-scoped kind must be allowed, a namespaced kind not denied and its
// namespace allowed.
func CheckObject(r flotillav1.ProjectRules, group, kind, namespace string, namespaced bool) error {
	if !namespaced {
		if !kindIn(r.ClusterResources, group, kind) {
			return violation(r.Name, "clusterResources", "cluster-scoped %s is not one of its clusterResources", groupKind(group, kind))
		}
		return nil
	}
	if kindIn(r.DeniedNamespacedResources, group, kind) {
		return violation(r.Name, "deniedNamespacedResources", "%s is one of its deniedNamespacedResources", groupKind(group, kind))
	}
	if !Glob(r.Namespaces, namespace) {
		return violation(r.Name, "destinations", "namespace %s is not allowed on this cluster (allowed: %s)", namespace, strings.Join(r.Namespaces, ", "))
	}
	return nil
}

func groupKind(group, kind string) string {
	if group == "" {
		return kind
	}
	return kind + "." + group
}

// Lookup finds Projects in the hub's namespace.
type Lookup func(ctx context.Context, name string) (*flotillav1.Project, error)

// notFound: the Application names a Project that does not exist.
func notFound(name, namespace string) error {
	return violation(name, "project", "no Project %q in the hub's namespace %s: create it (flotilla project create) or fix spec.project", name, namespace)
}

// Reader reads Projects through c, from namespace only.
func Reader(c client.Reader, namespace string) Lookup {
	return func(ctx context.Context, name string) (*flotillav1.Project, error) {
		p := &flotillav1.Project{}
		err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, p)
		if apierrors.IsNotFound(err) {
			return nil, notFound(name, namespace)
		}
		return p, err
	}
}

// IsViolation reports whether err is a broken project rule (not a read error).
func IsViolation(err error) bool {
	var v *Violation
	return errors.As(err, &v)
}

// ParseKinds reads "group/Kind" or "Kind" (core group) items.
func ParseKinds(items []string) ([]flotillav1.GroupKind, error) {
	var out []flotillav1.GroupKind
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		g, k, ok := strings.Cut(it, "/")
		if !ok {
			g, k = "", it
		}
		if k == "" {
			return nil, fmt.Errorf("kind %q: want group/Kind (for example rbac.authorization.k8s.io/ClusterRoleBinding) or Kind", it)
		}
		out = append(out, flotillav1.GroupKind{Group: g, Kind: k})
	}
	return out, nil
}
