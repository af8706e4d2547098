package agent

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func TestSpokePolicy(t *testing.T) {
	obj := func(apiVersion, kind, ns, name string, extra map[string]any) *unstructured.Unstructured {
		o := &unstructured.Unstructured{Object: map[string]any{"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": name}}}
		for k, v := range extra {
			o.Object[k] = v
		}
		o.SetNamespace(ns)
		return o
	}
	adminBinding := obj("rbac.authorization.k8s.io/v1", "ClusterRoleBinding", "", "everyone-admin", map[string]any{
		"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"}})
	viewBinding := obj("rbac.authorization.k8s.io/v1", "RoleBinding", "team-a", "view", map[string]any{
		"roleRef": map[string]any{"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"}})
	strict := Policy{AllowedNamespaces: []string{"team-*"}, DeniedKinds: []flotillav1.GroupKind{{Group: "apps", Kind: "DaemonSet"}},
		DenyClusterScoped: true, ProtectAgentNamespace: true, DenyClusterAdminBindings: true}
	for _, tc := range []struct {
		name       string
		p          Policy
		o          *unstructured.Unstructured
		namespaced bool
		flag       string // "" allowed
	}{
		{"the zero policy allows all", Policy{}, adminBinding, false, ""},
		{"a ConfigMap in a team namespace", strict, obj("v1", "ConfigMap", "team-a", "x", nil), true, ""},
		{"a RoleBinding to view", strict, viewBinding, true, ""},
		{"a denied kind", strict, obj("apps/v1", "DaemonSet", "team-a", "x", nil), true, "--denied-kinds"},
		{"cluster-scoped", strict, obj("v1", "Namespace", "", "team-c", nil), false, "--deny-cluster-scoped"},
		{"the agent's namespace", strict, obj("v1", "ConfigMap", "flotilla-system", "x", nil), true, "--protect-agent-namespace"},
		{"the agent's Namespace object", Policy{ProtectAgentNamespace: true}, obj("v1", "Namespace", "", "flotilla-system", nil), false, "--protect-agent-namespace"},
		{"outside the allowed namespaces", strict, obj("v1", "ConfigMap", "kube-system", "x", nil), true, "--allowed-namespaces"},
		{"a binding to cluster-admin", Policy{DenyClusterAdminBindings: true}, adminBinding, false, "--deny-cluster-admin-bindings"},
	} {
		err := tc.p.check(tc.o, tc.namespaced, "flotilla-system")
		if (tc.flag == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), "flotilla-agent "+tc.flag)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.flag)
		}
	}
}
