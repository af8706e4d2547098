package agent_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestDeploymentGoesHealthy: with kube-controller-manager, kube-scheduler
// and kwok running, a Deployment in Git goes Progressing → Healthy in the
// Application's status; a new image tag in Git rolls out the same way.
func TestDeploymentGoesHealthy(t *testing.T) {
	env := testenv.Start(t)
	env.StartWorkloads(t)
	ctx := t.Context()
	c := env.Client
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev := repo.MustCommit(t, map[string]string{"web/kustomization.yaml": "resources: [deployment.yaml]\n", "web/deployment.yaml": deployment}, "web")
	startAgent(t, env, filepath.Join(t.TempDir(), "git"))

	watch := watchHealth(t, env, "web") // before the Application exists: no status write is missed
	require.NoError(t, c.Create(ctx, newApp("web", repo.URL, "web", "web", auto())))
	seen := watch(rev)
	assert.Contains(t, seen, flotillav1.HealthProgressing, "the rollout is seen Progressing first: %v", seen)

	watch = watchHealth(t, env, "web")
	rev = repo.MustCommit(t, map[string]string{"web/kustomization.yaml": "resources: [deployment.yaml]\nimages: [{name: nginx, newTag: '1.27'}]\n"}, "bump")
	refresh(t, c, "web")
	seen = watch(rev)
	app := getApp(t, c, "web")
	assert.Equal(t, flotillav1.HealthHealthy, app.Status.Health.Status)
	t.Logf("health seen during the image bump: %v", seen)
}

// watchHealth starts watching the Application; the function it returns
// waits until it is Healthy at revision and returns the health values its
// status went through: every status write is an event, so a short
// Progressing phase cannot fall between two polls.
func watchHealth(t *testing.T, env *testenv.Env, name string) func(revision string) []flotillav1.HealthStatusCode {
	t.Helper()
	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	w, err := wc.Watch(ctx, &flotillav1.ApplicationList{}, client.InNamespace(ns), client.MatchingFields{"metadata.name": name})
	require.NoError(t, err)
	return func(revision string) []flotillav1.HealthStatusCode {
		t.Helper()
		defer cancel()
		defer w.Stop()
		var seen []flotillav1.HealthStatusCode
		last := ""
		for ev := range w.ResultChan() {
			app, ok := ev.Object.(*flotillav1.Application)
			if !ok {
				continue
			}
			h := app.Status.Health.Status
			if h != "" && (len(seen) == 0 || seen[len(seen)-1] != h) {
				seen = append(seen, h)
			}
			last = string(h) + ": " + app.Status.Health.Message
			if h == flotillav1.HealthHealthy && app.Status.Sync.Revision == revision {
				return seen
			}
		}
		t.Fatalf("%s not Healthy at %s in time; last: %s (seen %v)", name, revision, last, seen)
		return nil
	}
}

// TestForbiddenReadIsUnknown: an object the agent may not read is reported
// Unknown with the apiserver's message, never "Missing / not found".
func TestForbiddenReadIsUnknown(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	// The agent may do everything it needs except read Secrets.
	require.NoError(t, c.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "agent-no-secrets"}, Rules: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"configmaps", "namespaces", "events", "services"}, Verbs: []string{"*"}},
		{APIGroups: []string{"events.k8s.io", "coordination.k8s.io", flotillav1.GroupVersion.Group, "apps"}, Resources: []string{"*"}, Verbs: []string{"*"}},
		{APIGroups: []string{"apiextensions.k8s.io"}, Resources: []string{"customresourcedefinitions"}, Verbs: []string{"get", "list", "watch"}},
	}}))
	require.NoError(t, c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "agent-no-secrets"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "agent-no-secrets"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "restricted-agent"}}}))
	cfg, err := clientcmd.RESTConfigFromKubeConfig(env.UserKubeconfig(t, "restricted-agent"))
	require.NoError(t, err)

	repo := gittest.New(t).Repo(t, "secret")
	rev := repo.MustCommit(t, map[string]string{"app/cm.yaml": cmA, "app/secret.yaml": "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\nstringData: {k: v}\n"}, "a secret")
	stop := startAgentAs(t, cfg, filepath.Join(t.TempDir(), "git"))
	defer stop()
	// Manual sync: the agent only reads what the Application lists.
	require.NoError(t, c.Create(ctx, newApp("reader", repo.URL, "app", "default", nil)))
	eventually(t, 30*time.Second, "the Secret Unknown with the apiserver's message", func() (bool, string) {
		app := getApp(t, c, "reader")
		for _, r := range app.Status.Resources {
			if r.Kind == "Secret" {
				return r.Health == flotillav1.HealthUnknown && strings.Contains(r.Message, "forbidden") && strings.Contains(r.Message, "restricted-agent") &&
					app.Status.Health.Status != flotillav1.HealthHealthy && app.Status.Sync.Revision == rev, r.Message
			}
		}
		return false, fmt.Sprint(app.Status.Resources)
	})
}
