package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

const tenantDeployment = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: registry.example/web}]
`

// tenantSetYAML is team's set: its apps on both spokes, into its namespace.
func tenantSetYAML(team, repoURL string, apps ...string) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: apps, namespace: %[1]s}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{cluster: spoke-1}, {cluster: spoke-2}]}
      - list: {elements: [%[3]s]}
  template:
    metadata: {name: '{{ .cluster }}-{{ .app }}'}
    spec:
      project: %[1]s
      source: {repoURL: %[2]s, path: '%[1]s/{{ .app }}'}
      destination: {cluster: '{{ .cluster }}', namespace: %[1]s}
      syncPolicy: {automated: {prune: true, selfHeal: true}}
`, team, repoURL, "{app: "+strings.Join(apps, "}, {app: ")+"}")
}

// Scenario: two teams on shared clusters. Each deploys its own apps
// Healthy; team-a's attempt at team-b's namespace and at a
// ClusterRoleBinding (its Project, carelessly, allows both) is refused by
// the spoke's RBAC for team-a's ServiceAccount, in the apiserver's words; the
// spoke's policy refuses a Secret team-b's Project allows; a hand-made
// hub Application outside its Project is not delivered, and Applications
// written straight onto a spoke (no hub checked them) are refused by the
// agent.
func TestTenancy(t *testing.T) {
	spokes := []string{"spoke-1", "spoke-2"}
	f := fleettest.Start(t, spokes, func(o *localfleet.Options) { o.AgentArgs = append(o.AgentArgs, "--denied-kinds=Secret") })
	ctx := context.Background()
	teams := []string{"team-a", "team-b"}
	for _, s := range spokes {
		c := f.Spokes[s].Client
		for _, team := range teams {
			check(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}}))
			check(t, c.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: team, Namespace: flotillav1.SystemNamespace}}))
			check(t, c.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Name: team, Namespace: team},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{"*"}, Resources: []string{"*"}, Verbs: []string{"*"}}}}))
			check(t, c.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: team, Namespace: team},
				RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: team},
				Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: team, Namespace: flotillav1.SystemNamespace}}}))
		}
	}
	for _, team := range teams {
		check(t, f.Hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: team}}))
	}
	repo, err := f.Git.CreateRepo("tenants")
	check(t, err)
	_, err = repo.Commit(map[string]string{
		"team-a/web/deployment.yaml": tenantDeployment,
		"team-a/intrude/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: planted, namespace: team-b}\ndata: {a: b}\n",
		"team-a/intrude/crb.yaml":    "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata: {name: team-a-everywhere}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: view}\nsubjects: [{kind: ServiceAccount, name: team-a, namespace: flotilla-system}]\n",
		"team-b/web/deployment.yaml": tenantDeployment,
		"team-b/secret/secret.yaml":  "apiVersion: v1\nkind: Secret\nmetadata: {name: token}\nstringData: {a: b}\n",
	}, "two teams")
	check(t, err)
	mustOut(t)(f.Flotilla(ctx, "project", "create", "team-a", "--source-namespace", "team-a", "--source-repo", repo.URL,
		"--namespace", "team-*", "--allow-cluster-resource", "rbac.authorization.k8s.io/ClusterRoleBinding", "--service-account", "team-a"))
	mustOut(t)(f.Flotilla(ctx, "project", "create", "team-b", "--source-namespace", "team-b", "--source-repo", repo.URL,
		"--namespace", "team-b", "--service-account", "team-b"))
	out := mustOut(t)(f.Flotilla(ctx, "project", "list"))
	if !strings.Contains(out, "team-a") || !strings.Contains(out, "default") {
		t.Fatalf("flotilla project list:\n%s", out)
	}
	check(t, f.ApplyYAML(ctx, "team-a", tenantSetYAML("team-a", repo.URL, "web", "intrude")))
	check(t, f.ApplyYAML(ctx, "team-b", tenantSetYAML("team-b", repo.URL, "web", "secret")))

	hubApp := func(ns, name string) *flotillav1.Application {
		a := &flotillav1.Application{}
		check(t, f.Hub.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, a))
		return a
	}
	resourceSays := func(a *flotillav1.Application, kind, want string) (bool, string) {
		for _, r := range a.Status.Resources {
			if r.Kind == kind {
				return strings.Contains(r.Message, want), r.Message
			}
		}
		return false, kind + " not in status"
	}
	for _, s := range spokes {
		for _, team := range teams {
			eventually(t, 3*time.Minute, team+"'s web Healthy on "+s, func() (bool, string) {
				a := hubApp(team, s+"-web")
				return a.Status.Health.Status == flotillav1.HealthHealthy, fmt.Sprintf("%s: %s", a.Status.Health.Status, a.Status.LastSyncError)
			})
		}
		sa := `User "system:serviceaccount:flotilla-system:team-a" cannot`
		eventually(t, time.Minute, "team-a's ConfigMap in team-b refused by RBAC on "+s, func() (bool, string) {
			return resourceSays(hubApp("team-a", s+"-intrude"), "ConfigMap", sa)
		})
		eventually(t, time.Minute, "team-a's ClusterRoleBinding refused by RBAC on "+s, func() (bool, string) {
			return resourceSays(hubApp("team-a", s+"-intrude"), "ClusterRoleBinding", sa)
		})
		eventually(t, time.Minute, "team-b's Secret refused by the spoke's policy on "+s, func() (bool, string) {
			return resourceSays(hubApp("team-b", s+"-secret"), "Secret", "refused by this cluster's policy (flotilla-agent --denied-kinds")
		})
		c := f.Spokes[s].Client
		for _, o := range []client.Object{&corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "planted"}},
			&rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "team-a-everywhere"}}, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "token"}}} {
			if err := c.Get(ctx, client.ObjectKeyFromObject(o), o); !apierrors.IsNotFound(err) {
				t.Fatalf("%T %s exists on %s (err %v): a refused object was applied", o, o.GetName(), s, err)
			}
		}
	}

	// A hub Application written by hand, outside its Project: not delivered.
	check(t, f.ApplyYAML(ctx, "by-hand", fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: by-hand, namespace: team-a}
spec:
  project: team-a
  source: {repoURL: %s, path: team-a/web}
  destination: {cluster: spoke-1, namespace: kube-system}
`, repo.URL)))
	eventually(t, time.Minute, "the hand-made Application refused by the hub", func() (bool, string) {
		c := conditionOf(hubApp("team-a", "by-hand").Status.Conditions, flotillav1.ConditionDelivered)
		return c.Reason == flotillav1.ReasonProjectViolation && strings.Contains(c.Message, "namespace kube-system"), c.Message
	})

	// Applications written straight onto a spoke, past the hub: the agent refuses them.
	rules, err := json.Marshal(flotillav1.ProjectRules{Name: "team-a", SourceRepos: []string{repo.URL}, Namespaces: []string{"team-a"}, ServiceAccount: "team-a"})
	check(t, err)
	spoke := f.Spokes["spoke-1"].Client
	for name, annotations := range map[string]map[string]string{"forged": {flotillav1.AnnotationProjectRules: string(rules)}, "unchecked": nil} {
		check(t, spoke.Create(ctx, &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: flotillav1.SystemNamespace, Annotations: annotations},
			Spec: flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: repo.URL, Path: "team-b/web"},
				Destination: flotillav1.ApplicationDestination{Cluster: "spoke-1", Namespace: "team-b"},
				SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{}}}}))
	}
	for name, says := range map[string]string{"forged": "destination namespace team-b is not allowed", "unchecked": "carries no Project rules"} {
		eventually(t, time.Minute, name+" refused by the agent", func() (bool, string) {
			a := &flotillav1.Application{}
			check(t, spoke.Get(ctx, client.ObjectKey{Namespace: flotillav1.SystemNamespace, Name: name}, a))
			c := conditionOf(a.Status.Conditions, flotillav1.ConditionSynced)
			return c.Reason == flotillav1.ReasonProjectViolation && strings.Contains(c.Message, says), c.Message
		})
	}
	out = mustOut(t)(f.Flotilla(ctx, "status", "-o", "wide"))
	if !regexpMatch(`team-a\s+apps\s.*team-a`, out) {
		t.Fatalf("flotilla status -o wide does not show the set's project:\n%s", out)
	}
}
