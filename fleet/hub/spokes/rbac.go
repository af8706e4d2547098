package spokes

import (
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// HubRoleName names the Role the hub's identity gets on each spoke.
const HubRoleName = "flotilla-hub"

// HubRBAC is the least privilege the hub needs on a spoke: Applications,
// the agent's Lease, Events, and the repository credential Secrets it
// copies, in the agent namespace only (never cluster-wide).
func HubRBAC(namespace string, subject rbacv1.Subject) (*rbacv1.Role, *rbacv1.RoleBinding) {
	role := &rbacv1.Role{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "Role"},
		ObjectMeta: metav1.ObjectMeta{Name: HubRoleName, Namespace: namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "flotilla"}},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"flotilla.dev"}, Resources: []string{"applications"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{"", "events.k8s.io"}, Resources: []string{"events"}, Verbs: []string{"get", "list", "watch"}},
			{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
		},
	}
	binding := &rbacv1.RoleBinding{
		TypeMeta:   metav1.TypeMeta{APIVersion: "rbac.authorization.k8s.io/v1", Kind: "RoleBinding"},
		ObjectMeta: metav1.ObjectMeta{Name: HubRoleName, Namespace: namespace, Labels: role.Labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: HubRoleName},
		Subjects:   []rbacv1.Subject{subject},
	}
	return role, binding
}
