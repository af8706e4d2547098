package agent_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

// TestRefreshAndSyncRequests: refresh and sync are requests handled once
// per value (Flux's requestedAt / lastHandledAt): the annotations stay, the
// status says which value was handled, and an Application without
// automated sync applies only when a new sync value asks for it.
func TestRefreshAndSyncRequests(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	repo := gittest.New(t).Repo(t, "manual")
	rev := repo.MustCommit(t, map[string]string{"app/cm.yaml": cmA}, "first")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	require.NoError(t, c.Create(ctx, newApp("manual", repo.URL, "app", "default", &flotillav1.SyncPolicy{})))
	eventually(t, 30*time.Second, "OutOfSync, nothing applied", func() (bool, string) {
		app := getApp(t, c, "manual")
		return app.Status.Sync.Status == flotillav1.SyncStatusOutOfSync && app.Status.Sync.Revision == rev, string(app.Status.Sync.Status)
	})
	_, err := configMap(t, c, "default", "a")
	require.True(t, apierrors.IsNotFound(err), "a manual Application applied on its own: %v", err)

	annotate(t, c, "manual", flotillav1.AnnotationRefresh, "r1")
	eventually(t, 30*time.Second, "refresh r1 handled, still nothing applied", func() (bool, string) {
		return getApp(t, c, "manual").Status.LastHandledRefresh == "r1", ""
	})
	_, err = configMap(t, c, "default", "a")
	require.True(t, apierrors.IsNotFound(err), "a refresh applied a manual Application: %v", err)

	annotate(t, c, "manual", flotillav1.AnnotationSync, "s1")
	eventually(t, 30*time.Second, "sync s1 handled and applied", func() (bool, string) {
		app := getApp(t, c, "manual")
		_, err := configMap(t, c, "default", "a")
		return app.Status.LastHandledSync == "s1" && err == nil && app.Status.Sync.Status == flotillav1.SyncStatusSynced, string(app.Status.Sync.Status)
	})
	app := getApp(t, c, "manual")
	assert.Equal(t, "s1", app.Annotations[flotillav1.AnnotationSync], "the agent leaves the request's annotation alone")

	// Drift on a manual Application is reported, not healed, until the
	// next sync request: s1 was handled once.
	cm, err := configMap(t, c, "default", "a")
	require.NoError(t, err)
	cm.Data["color"] = "red"
	require.NoError(t, c.Update(ctx, cm, client.FieldOwner("someone-else")))
	eventually(t, 30*time.Second, "drift reported OutOfSync", func() (bool, string) {
		app := getApp(t, c, "manual")
		return app.Status.Sync.Status == flotillav1.SyncStatusOutOfSync, string(app.Status.Sync.Status)
	})
	cm, err = configMap(t, c, "default", "a")
	require.NoError(t, err)
	assert.Equal(t, "red", cm.Data["color"], "the handled sync request was applied again")
	annotate(t, c, "manual", flotillav1.AnnotationSync, "s2")
	eventually(t, 30*time.Second, "s2 re-applies", func() (bool, string) {
		cm, err := configMap(t, c, "default", "a")
		require.NoError(t, err)
		return cm.Data["color"] == "blue" && getApp(t, c, "manual").Status.LastHandledSync == "s2", cm.Data["color"]
	})
}
