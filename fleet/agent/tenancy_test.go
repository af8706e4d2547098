package agent_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

// resourceMessage is the message of one resource in an Application's status.
func resourceMessage(app *flotillav1.Application, kind, name string) string {
	for _, r := range app.Status.Resources {
		if r.Kind == kind && r.Name == name {
			return r.Message
		}
	}
	return "<not listed>"
}

// TestTenancyOnTheSpoke: the agent applies a Project's Applications as the
// Project's ServiceAccount (the spoke's RBAC answers for it), checks the
// Project rules delivered with the copy object by object (a cluster-scoped
// kind it does not allow, a namespace outside it, a repository outside its
// sources), and obeys the spoke's own policy even where the Project
// allows: each refused object is named, the rest are applied.
func TestTenancyOnTheSpoke(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	for _, n := range []string{"team-a", "team-b"} {
		require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}))
	}
	// team-a's identity: everything in namespace team-a, nothing elsewhere.
	require.NoError(t, c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: ns}}))
	require.NoError(t, c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: "team-a"},
		Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}))
	require.NoError(t, c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: "team-a"},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: "team-a"},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "team-a", Namespace: ns}}}))
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev := repo.MustCommit(t, map[string]string{
		"own/cm.yaml":           "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own, namespace: team-a}\ndata: {a: b}\n",
		"own/other.yaml":        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: theirs, namespace: team-b}\ndata: {a: b}\n",
		"own/crb.yaml":          "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: team-a-admin}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: ServiceAccount, name: team-a, namespace: team-a}]\n",
		"own/secret.yaml":       "apiVersion: v1\nkind: Secret\nmetadata: {name: token, namespace: team-a}\nstringData: {a: b}\n",
		"own/agent-ns.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: sneaky, namespace: " + ns + "}\n",
		"wide/cm.yaml":          "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: wide, namespace: team-b}\ndata: {a: b}\n",
		"wide/clusterrole.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: team-wide}\nrules: []\n",
	}, "tenants")
	stop := startAgent(t, env, t.TempDir(), func(o *agent.Options) {
		o.Policy = agent.Policy{ProtectAgentNamespace: true, DeniedKinds: []flotillav1.GroupKind{{Group: "", Kind: "Secret"}}}
	})
	defer stop()

	rules := func(r flotillav1.ProjectRules) string {
		raw, err := json.Marshal(r)
		require.NoError(t, err)
		return string(raw)
	}
	teamA := flotillav1.ProjectRules{Name: "team-a", SourceRepos: []string{repo.URL}, Namespaces: []string{"team-a", "team-b", ns},
		ClusterResources: []flotillav1.GroupKind{{Group: "rbac.authorization.k8s.io", Kind: "ClusterRoleBinding"}}, ServiceAccount: "team-a"}

	// The Project allows team-b and a ClusterRoleBinding, but team-a's
	// ServiceAccount may not: the apiserver says no. The policy refuses the
	// Secret and the agent's namespace, whatever the Project says.
	app := newApp("team-a", repo.URL, "own", "team-a", &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true}})
	app.Annotations = map[string]string{flotillav1.AnnotationProjectRules: rules(teamA)}
	require.NoError(t, c.Create(ctx, app))
	var got *flotillav1.Application
	eventually(t, 30*time.Second, "team-a's own ConfigMap applied, the rest refused", func() (bool, string) {
		got = getApp(t, c, "team-a")
		_, err := configMap(t, c, "team-a", "own")
		return err == nil && got.Status.Sync.Revision == rev && len(got.Status.Resources) == 5, cond(got, flotillav1.ConditionSynced).Message
	})
	for kind, want := range map[string][2]string{
		"theirs":       {"ConfigMap", `User "system:serviceaccount:` + ns + `:team-a" cannot`},
		"team-a-admin": {"ClusterRoleBinding", `User "system:serviceaccount:` + ns + `:team-a" cannot`},
		"token":        {"Secret", "refused by this cluster's policy (flotilla-agent --denied-kinds"},
		"sneaky":       {"ConfigMap", "refused by this cluster's policy (flotilla-agent --protect-agent-namespace"},
	} {
		require.Contains(t, resourceMessage(got, want[0], kind), want[1], "%s %s", want[0], kind)
	}
	_, err := configMap(t, c, "team-b", "theirs")
	require.True(t, apierrors.IsNotFound(err), "nothing lands in team-b")
	require.True(t, apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "team-a-admin"}, &rbacv1.ClusterRoleBinding{})))
	err = c.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "token"}, &corev1.Secret{})
	require.True(t, apierrors.IsNotFound(err), "the denied Secret: %v", err)

	// The rules delivered with the copy, checked again: a namespace and a
	// cluster-scoped kind the Project does not allow.
	narrow := flotillav1.ProjectRules{Name: "team-a", SourceRepos: []string{repo.URL}, Namespaces: []string{"team-a"}}
	wide := newApp("wide", repo.URL, "wide", "team-a", auto())
	wide.Annotations = map[string]string{flotillav1.AnnotationProjectRules: rules(narrow)}
	require.NoError(t, c.Create(ctx, wide))
	eventually(t, 30*time.Second, "objects outside the Project refused by the agent", func() (bool, string) {
		got = getApp(t, c, "wide")
		return strings.Contains(resourceMessage(got, "ClusterRole", "team-wide"), "(clusterResources)") &&
			strings.Contains(resourceMessage(got, "ConfigMap", "wide"), "namespace team-b is not allowed"), cond(got, flotillav1.ConditionSynced).Message
	})
	require.True(t, apierrors.IsNotFound(c.Get(ctx, client.ObjectKey{Name: "team-wide"}, &rbacv1.ClusterRole{})))

	// A repository outside the Project's sources: nothing applied at all.
	foreign := newApp("foreign", repo.URL, "wide", "team-a", auto())
	foreign.Annotations = map[string]string{flotillav1.AnnotationProjectRules: rules(flotillav1.ProjectRules{Name: "team-a", SourceRepos: []string{"https://git.example/team-a/*"}, Namespaces: []string{"*"}})}
	require.NoError(t, c.Create(ctx, foreign))
	eventually(t, 30*time.Second, "a repository outside sourceRepos refused", func() (bool, string) {
		s := cond(getApp(t, c, "foreign"), flotillav1.ConditionSynced)
		return s.Reason == flotillav1.ReasonProjectViolation && strings.Contains(s.Message, "(sourceRepos)"), s.Message
	})
	require.Empty(t, getApp(t, c, "foreign").Status.Resources)
}
