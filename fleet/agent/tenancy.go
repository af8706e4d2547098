package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/project"
)

// Policy is the spoke's own last word, set only by whoever installs the
// agent (its flags, the agent chart's policy values): the hub cannot
// change it. The zero Policy allows everything.
type Policy struct {
	// AllowedNamespaces are globs of the namespaces objects may land in
	// (empty: any).
	AllowedNamespaces []string
	// DeniedKinds are kinds never applied.
	DeniedKinds []flotillav1.GroupKind
	// DenyClusterScoped refuses every cluster-scoped object.
	DenyClusterScoped bool
	// ProtectAgentNamespace refuses objects in the agent's own namespace
	// (and that Namespace itself).
	ProtectAgentNamespace bool
	// DenyClusterAdminBindings refuses RoleBindings and
	// ClusterRoleBindings to the ClusterRole cluster-admin.
	DenyClusterAdminBindings bool
	// RequireProjectRules refuses Applications that carry no Project rules:
	// they did not come from a hub that checked them.
	RequireProjectRules bool
}

func policyRefusal(flag, format string, args ...any) error {
	return fmt.Errorf("refused by this cluster's policy (flotilla-agent %s, set by whoever installed the agent): %s", flag, fmt.Sprintf(format, args...))
}

// check applies the policy to one object.
func (p Policy) check(o *unstructured.Unstructured, namespaced bool, agentNamespace string) error {
	gvk := o.GroupVersionKind()
	name := o.GetKind() + " " + o.GetName()
	if o.GetNamespace() != "" {
		name = o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
	}
	for _, d := range p.DeniedKinds {
		if (d.Group == "*" || d.Group == gvk.Group) && (d.Kind == "*" || d.Kind == gvk.Kind) {
			return policyRefusal("--denied-kinds", "%s is a denied kind", name)
		}
	}
	if !namespaced && p.DenyClusterScoped {
		return policyRefusal("--deny-cluster-scoped", "%s is cluster-scoped", name)
	}
	if p.ProtectAgentNamespace && (o.GetNamespace() == agentNamespace || (gvk.Group == "" && gvk.Kind == "Namespace" && o.GetName() == agentNamespace)) {
		return policyRefusal("--protect-agent-namespace", "%s is in the agent's own namespace", name)
	}
	if namespaced && len(p.AllowedNamespaces) > 0 && !project.Glob(p.AllowedNamespaces, o.GetNamespace()) {
		return policyRefusal("--allowed-namespaces", "%s is outside the allowed namespaces (%s)", name, strings.Join(p.AllowedNamespaces, ", "))
	}
	if p.DenyClusterAdminBindings && gvk.Group == "rbac.authorization.k8s.io" && (gvk.Kind == "RoleBinding" || gvk.Kind == "ClusterRoleBinding") {
		kind, _, _ := unstructured.NestedString(o.Object, "roleRef", "kind")
		ref, _, _ := unstructured.NestedString(o.Object, "roleRef", "name")
		if kind == "ClusterRole" && ref == "cluster-admin" {
			return policyRefusal("--deny-cluster-admin-bindings", "%s binds cluster-admin", name)
		}
	}
	return nil
}

// rulesOf reads the Project rules the hub delivered with a spoke copy
// (nil: none, an Application no hub checked).
func rulesOf(app *flotillav1.Application) (*flotillav1.ProjectRules, error) {
	raw := app.Annotations[flotillav1.AnnotationProjectRules]
	if raw == "" {
		return nil, nil
	}
	r := &flotillav1.ProjectRules{}
	if err := json.Unmarshal([]byte(raw), r); err != nil {
		return nil, fmt.Errorf("annotation %s is not valid JSON: %w", flotillav1.AnnotationProjectRules, err)
	}
	return r, nil
}

// Impersonation makes clients that act as a ServiceAccount of the agent's
// namespace, one per ServiceAccount, sharing the agent's scheme and
// RESTMapper.
type Impersonation struct {
	Config    *rest.Config
	Options   client.Options
	Namespace string

	mu      sync.Mutex
	clients map[string]client.Client
}

// For is the client acting as ServiceAccount sa.
func (i *Impersonation) For(sa string) (client.Client, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if c, ok := i.clients[sa]; ok {
		return c, nil
	}
	cfg := rest.CopyConfig(i.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: fmt.Sprintf("system:serviceaccount:%s:%s", i.Namespace, sa)}
	c, err := client.New(cfg, i.Options)
	if err != nil {
		return nil, fmt.Errorf("client for ServiceAccount %s: %w", sa, err)
	}
	if i.clients == nil {
		i.clients = map[string]client.Client{}
	}
	i.clients[sa] = c
	return c, nil
}

// serviceAccount is who applies app: its Project's ServiceAccount, else
// the agent's default one ("" is the agent itself).
func (r *Reconciler) serviceAccount(rules *flotillav1.ProjectRules) string {
	if rules != nil && rules.ServiceAccount != "" {
		return rules.ServiceAccount
	}
	return r.DefaultServiceAccount
}

// writerFor is the client that writes app's objects.
func (r *Reconciler) writerFor(app *flotillav1.Application) (client.Client, error) {
	rules, err := rulesOf(app)
	if err != nil {
		return nil, err
	}
	return r.writerAs(rules)
}

// writerAs is the client acting for rules' ServiceAccount (or the default one).
func (r *Reconciler) writerAs(rules *flotillav1.ProjectRules) (client.Client, error) {
	sa := r.serviceAccount(rules)
	if sa == "" || r.Impersonation == nil {
		return r.Client, nil
	}
	return r.Impersonation.For(sa)
}

// admissible checks an Application against the rules delivered with it:
// present when the spoke requires them, its repository, its destination
// namespace.
func (r *Reconciler) admissible(app *flotillav1.Application, rules *flotillav1.ProjectRules) error {
	if rules == nil {
		if r.Policy.RequireProjectRules {
			return fmt.Errorf("it carries no Project rules (annotation %s), so no hub checked it; this cluster requires them (flotilla-agent --require-project-rules)", flotillav1.AnnotationProjectRules)
		}
		return nil
	}
	if err := project.CheckSource(*rules, app.Spec.Source.RepoURL); err != nil {
		return err
	}
	if ns := app.Spec.Destination.Namespace; ns != "" && !project.Glob(rules.Namespaces, ns) {
		return fmt.Errorf("project %s: destination namespace %s is not allowed on this cluster (allowed: %s)", rules.Name, ns, strings.Join(rules.Namespaces, ", "))
	}
	return nil
}

// admit checks the Application against the Project rules delivered with
// it and picks who applies it. A refused Application applies nothing and
// prunes nothing.
func (r *Reconciler) admit(_ context.Context, s *syncState) (bool, error) {
	rules, err := rulesOf(s.app)
	if err == nil {
		err = r.admissible(s.app, rules)
	}
	var w client.Client
	if err == nil {
		w, err = r.writerAs(rules)
	}
	if err != nil {
		s.out = notSynced(flotillav1.ReasonProjectViolation, fmt.Errorf("refused by the agent: %w", err), "", 0)
		return true, nil
	}
	s.rules, s.writer = rules, w
	s.applier = &Applier{Client: w, CRDTimeout: r.applier.CRDTimeout, Check: r.check(rules)}
	return false, nil
}

// check refuses, one by one, the objects the Project rules delivered with
// the Application or the spoke's policy forbid; the rest are applied.
func (r *Reconciler) check(rules *flotillav1.ProjectRules) func(o *unstructured.Unstructured, namespaced bool) error {
	return func(o *unstructured.Unstructured, namespaced bool) error {
		if rules != nil {
			if err := project.CheckObject(*rules, o.GroupVersionKind().Group, o.GetKind(), o.GetNamespace(), namespaced); err != nil {
				return fmt.Errorf("refused by the agent: %w", err)
			}
		}
		return r.Policy.check(o, namespaced, r.Namespace)
	}
}
