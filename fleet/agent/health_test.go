package agent_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

	require.NoError(t, c.Create(ctx, newApp("web", repo.URL, "web", "web", auto())))
	seen := watchHealth(t, c, "web", rev)
	assert.Contains(t, seen, flotillav1.HealthProgressing, "the rollout is seen Progressing first: %v", seen)

	rev = repo.MustCommit(t, map[string]string{"web/kustomization.yaml": "resources: [deployment.yaml]\nimages: [{name: nginx, newTag: '1.27'}]\n"}, "bump")
	refresh(t, c, "web")
	seen = watchHealth(t, c, "web", rev)
	app := getApp(t, c, "web")
	assert.Equal(t, flotillav1.HealthHealthy, app.Status.Health.Status)
	t.Logf("health seen during the image bump: %v", seen)
}

// watchHealth polls until the Application is Healthy at revision and
// returns the health values it went through.
func watchHealth(t *testing.T, c client.Client, name, revision string) []flotillav1.HealthStatusCode {
	t.Helper()
	var seen []flotillav1.HealthStatusCode
	eventually(t, 60*time.Second, name+" Healthy at "+revision, func() (bool, string) {
		app := getApp(t, c, name)
		h := app.Status.Health.Status
		if h != "" && (len(seen) == 0 || seen[len(seen)-1] != h) {
			seen = append(seen, h)
		}
		return h == flotillav1.HealthHealthy && app.Status.Sync.Revision == revision, string(h) + ": " + app.Status.Health.Message
	})
	return seen
}
