package agent_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

func cm(name, annotations string) string {
	return "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + name + ", annotations: {" + annotations + "}}\ndata: {k: v}\n"
}

// TestSyncOptions: the supported sync options do what Argo CD users
// expect, and any other value is refused by the CRD with the list.
func TestSyncOptions(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	srv := gittest.New(t)
	repo := srv.Repo(t, "options")
	rev := repo.MustCommit(t, map[string]string{
		"opts/keep.yaml":  cm("keep", `flotilla.dev/sync-options: "Prune=false,Delete=false"`),
		"opts/plain.yaml": cm("plain", ""),
		"opts/fg.yaml":    cm("fg", ""),
	}, "options")
	lastRepo := srv.Repo(t, "last")
	lastRev := lastRepo.MustCommit(t, map[string]string{"last/web.yaml": deployment, "last/old.yaml": cm("old", ""), "last/current.yaml": cm("current", "")}, "last")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()

	t.Run("an unsupported option is refused, naming the supported ones", func(t *testing.T) {
		app := newApp("bad", repo.URL, "opts", "default", auto())
		app.Spec.SyncPolicy.SyncOptions = []string{"Replace=true"}
		err := c.Create(ctx, app)
		require.Error(t, err)
		assert.Contains(t, err.Error(), "PruneLast=true")
		assert.Contains(t, err.Error(), "PrunePropagationPolicy=foreground")
	})

	t.Run("Prune=false, Delete=false and PrunePropagationPolicy", func(t *testing.T) {
		app := newApp("opts", repo.URL, "opts", "opts", auto())
		app.Spec.SyncPolicy.SyncOptions = append(app.Spec.SyncPolicy.SyncOptions, "PrunePropagationPolicy=foreground")
		require.NoError(t, c.Create(ctx, app))
		waitSynced(t, c, "opts", rev)
		next := repo.MustCommit(t, map[string]string{"opts/keep.yaml": gittest.Delete, "opts/fg.yaml": gittest.Delete}, "drop keep and fg")
		refresh(t, c, "opts")
		waitSynced(t, c, "opts", next)
		_, err := configMap(t, c, "opts", "keep")
		require.NoError(t, err, "Prune=false: kept when it left Git")
		fg, err := configMap(t, c, "opts", "fg")
		// envtest runs no garbage collector: a foreground deletion waits
		// on its finalizer, which shows the policy used.
		require.NoError(t, err)
		assert.False(t, fg.DeletionTimestamp.IsZero())
		assert.Contains(t, fg.Finalizers, metav1.FinalizerDeleteDependents)

		restore := repo.MustCommit(t, map[string]string{"opts/keep.yaml": cm("keep", `flotilla.dev/sync-options: "Prune=false,Delete=false"`)}, "keep is back")
		refresh(t, c, "opts")
		waitSynced(t, c, "opts", restore)
		require.NoError(t, c.Delete(ctx, getApp(t, c, "opts")))
		eventually(t, 30*time.Second, "the Application gone, plain deleted (foreground: waiting on the collector)", func() (bool, string) {
			plain, err := configMap(t, c, "opts", "plain")
			return (apierrors.IsNotFound(err) || !plain.DeletionTimestamp.IsZero()) &&
				apierrors.IsNotFound(c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "opts"}, &flotillav1.Application{})), ""
		})
		keep, err := configMap(t, c, "opts", "keep")
		require.NoError(t, err, "Delete=false: kept when its Application was deleted")
		assert.True(t, keep.DeletionTimestamp.IsZero(), "Delete=false: not even being deleted")
	})

	t.Run("PruneLast waits for everything else to be Healthy", func(t *testing.T) {
		app := newApp("last", lastRepo.URL, "last", "last", auto())
		app.Spec.SyncPolicy.SyncOptions = append(app.Spec.SyncPolicy.SyncOptions, "PruneLast=true")
		require.NoError(t, c.Create(ctx, app))
		waitSynced(t, c, "last", lastRev)
		next := lastRepo.MustCommit(t, map[string]string{"last/old.yaml": gittest.Delete, "last/current.yaml": cm("current", `changed: "yes"`)}, "drop old")
		refresh(t, c, "last")
		waitSynced(t, c, "last", next)
		time.Sleep(2 * time.Second) // health checks run every 300ms: old must survive them while web is not Healthy
		_, err := configMap(t, c, "last", "old")
		require.NoError(t, err, "pruned before the Deployment was Healthy")

		// No controller manager here: report the Deployment available, as
		// its controller would.
		d := &appsv1.Deployment{}
		require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "last", Name: "web"}, d))
		d.Status = appsv1.DeploymentStatus{ObservedGeneration: d.Generation, Replicas: *d.Spec.Replicas, UpdatedReplicas: *d.Spec.Replicas,
			ReadyReplicas: *d.Spec.Replicas, AvailableReplicas: *d.Spec.Replicas,
			Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue},
				{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"}}}
		require.NoError(t, c.Status().Update(ctx, d))
		eventually(t, 30*time.Second, "old pruned once web is Healthy", func() (bool, string) {
			_, err := configMap(t, c, "last", "old")
			return apierrors.IsNotFound(err), strings.TrimSpace(string(getApp(t, c, "last").Status.Health.Status))
		})
	})
}

// TestIgnoreDifferencesWithAnHPALikeWriter: another writer keeps scaling a
// Deployment (as an HPA does, field manager kube-controller-manager) while
// selfHeal is on: with spec.replicas ignored the agent never fights it —
// no drift reported or corrected — and a new commit still applies the
// rest, keeping the writer's replicas.
func TestIgnoreDifferencesWithAnHPALikeWriter(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	repo := gittest.New(t).Repo(t, "hpa")
	rev := repo.MustCommit(t, map[string]string{"app/web.yaml": deployment}, "web")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	app := newApp("web", repo.URL, "app", "shop", auto())
	app.Spec.IgnoreDifferences = []flotillav1.ResourceIgnoreDifferences{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}}
	require.NoError(t, c.Create(ctx, app))
	waitSynced(t, c, "web", rev)

	scale := func(n int32) {
		d := &appsv1.Deployment{}
		require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "web"}, d))
		d.Spec.Replicas = &n
		require.NoError(t, c.Update(ctx, d, client.FieldOwner("kube-controller-manager")))
	}
	// The writer scales up and down for a while; the agent sees every
	// change (its watch) and checks drift each time.
	for _, n := range []int32{3, 5, 4, 6} {
		scale(n)
		time.Sleep(500 * time.Millisecond)
	}
	replicas := func() int32 {
		d := &appsv1.Deployment{}
		require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "web"}, d))
		return *d.Spec.Replicas
	}
	assert.Equal(t, int32(6), replicas(), "the agent fought the writer")
	got := getApp(t, c, "web")
	assert.Zero(t, got.Status.DriftCorrections, "ignored replicas counted as drift")
	assert.Equal(t, flotillav1.SyncStatusSynced, got.Status.Sync.Status)

	next := repo.MustCommit(t, map[string]string{"app/web.yaml": strings.Replace(deployment, "nginx:1.25", "nginx:1.27", 1)}, "new image")
	refresh(t, c, "web")
	waitSynced(t, c, "web", next)
	d := &appsv1.Deployment{}
	require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "shop", Name: "web"}, d))
	assert.Equal(t, "nginx:1.27", d.Spec.Template.Spec.Containers[0].Image, "the rest of the commit applied")
	assert.Equal(t, int32(6), *d.Spec.Replicas, "the writer's replicas kept through an apply")
}
