package agent_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

// TestOwnership: an Application never takes over an object it did not
// create — a pre-existing Namespace, another Application's ConfigMap —
// unless the object or the Application consents; deleting it then removes
// only what it created or adopted with consent.
func TestOwnership(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team"}}))
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "preexisting", Labels: map[string]string{"owner": "platform"}}}))
	require.NoError(t, c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "adoptable", Namespace: "team",
		Annotations: map[string]string{flotillav1.AnnotationAdopt: "true"}}, Data: map[string]string{"v": "old"}}))

	repo := gittest.New(t).Repo(t, "ownership")
	rev := repo.MustCommit(t, map[string]string{
		"first/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: team}\ndata: {v: first}\n",
		"second/all.yaml": "apiVersion: v1\nkind: Namespace\nmetadata: {name: preexisting}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: shared, namespace: team}\ndata: {v: second}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: adoptable, namespace: team}\ndata: {v: second}\n---\n" +
			"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: own, namespace: team}\ndata: {v: second}\n",
	}, "two apps")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()

	policy := &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true, SelfHeal: true}}
	require.NoError(t, c.Create(ctx, newApp("first", repo.URL, "first", "team", policy)))
	waitSynced(t, c, "first", rev)
	require.NoError(t, c.Create(ctx, newApp("second", repo.URL, "second", "team", policy)))

	eventually(t, 30*time.Second, "second refuses what it does not own, naming the owner", func() (bool, string) {
		app := getApp(t, c, "second")
		msg := cond(app, flotillav1.ConditionSynced).Message
		return cond(app, flotillav1.ConditionSynced).Reason == flotillav1.ReasonApplyFailed &&
			strings.Contains(msg, "ConfigMap team/shared is managed by Application first") &&
			strings.Contains(msg, "Namespace preexisting already exists and was not created by Flotilla") &&
			!strings.Contains(msg, "adoptable") && !strings.Contains(msg, "team/own"), msg
	})
	shared, err := configMap(t, c, "team", "shared")
	require.NoError(t, err)
	assert.Equal(t, "first", shared.Data["v"], "the other Application's object is not overwritten")
	adopted, err := configMap(t, c, "team", "adoptable")
	require.NoError(t, err)
	assert.Equal(t, "second", adopted.Data["v"], "an object that consents is taken over")
	first := getApp(t, c, "first")
	assert.Equal(t, metav1.ConditionTrue, cond(first, flotillav1.ConditionSynced).Status, "the owner still syncs its object")

	// Deleting the second Application deletes what it created or adopted, nothing else.
	require.NoError(t, c.Delete(ctx, getApp(t, c, "second")))
	eventually(t, 30*time.Second, "second is gone with its own objects", func() (bool, string) {
		_, ownErr := configMap(t, c, "team", "own")
		_, adoptedErr := configMap(t, c, "team", "adoptable")
		appErr := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "second"}, &flotillav1.Application{})
		return apierrors.IsNotFound(ownErr) && apierrors.IsNotFound(adoptedErr) && apierrors.IsNotFound(appErr), "waiting"
	})
	nsObj := &corev1.Namespace{}
	require.NoError(t, c.Get(ctx, types.NamespacedName{Name: "preexisting"}, nsObj), "a pre-existing Namespace survives")
	assert.True(t, nsObj.DeletionTimestamp.IsZero(), "and is not being deleted")
	assert.Equal(t, "platform", nsObj.Labels["owner"])
	shared, err = configMap(t, c, "team", "shared")
	require.NoError(t, err, "the other Application's ConfigMap survives")
	assert.Equal(t, "first", shared.Data["v"])

	// The sync option adopts every existing object no Application manages.
	require.NoError(t, c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: "team"}, Data: map[string]string{"v": "hand-made"}}))
	third := newApp("third", repo.URL, "second", "team", policy)
	third.Spec.SyncPolicy = &flotillav1.SyncPolicy{Automated: policy.Automated, SyncOptions: []string{"AdoptExisting=true"}}
	require.NoError(t, c.Create(ctx, third))
	eventually(t, 30*time.Second, "third adopts the hand-made ConfigMap but not first's", func() (bool, string) {
		own, err := configMap(t, c, "team", "own")
		msg := cond(getApp(t, c, "third"), flotillav1.ConditionSynced).Message
		return err == nil && own.Data["v"] == "second" && strings.Contains(msg, "managed by Application first"), msg
	})
}

// TestOverlongNameIsReported: an object whose name no apiserver accepts is
// reported as invalid, the Application's status is still written, and the
// other objects apply.
func TestOverlongNameIsReported(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	long := strings.Repeat("n", 300)
	repo := gittest.New(t).Repo(t, "names")
	repo.MustCommit(t, map[string]string{"app/cms.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: " + long + "}\n---\n" +
		"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\n"}, "long name")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	require.NoError(t, c.Create(ctx, newApp("names", repo.URL, "app", "default", auto())))
	eventually(t, 30*time.Second, "status written, the long name reported invalid", func() (bool, string) {
		app := getApp(t, c, "names")
		synced := cond(app, flotillav1.ConditionSynced)
		return synced.Reason == flotillav1.ReasonApplyFailed && strings.Contains(synced.Message, "metadata.name is 300 characters long") &&
			app.Status.ResourceCount == 2 && len(app.Status.Resources) == 2, synced.Reason + ": " + synced.Message
	})
	_, err := configMap(t, c, "default", "fine")
	require.NoError(t, err, "the valid object is applied")
}

// TestRenderFailureIsStalled: a spec whose source cannot render is observed
// at its generation and Stalled, so kstatus reads it as Failed.
func TestRenderFailureIsStalled(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	repo := gittest.New(t).Repo(t, "broken")
	repo.MustCommit(t, map[string]string{"app/kustomization.yaml": "resources: [missing.yaml]\n"}, "broken")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	require.NoError(t, c.Create(ctx, newApp("broken", repo.URL, "app", "default", auto())))
	eventually(t, 30*time.Second, "RenderFailed, observed, Stalled", func() (bool, string) {
		app := getApp(t, c, "broken")
		stalled := cond(app, flotillav1.ConditionStalled)
		return cond(app, flotillav1.ConditionSynced).Reason == flotillav1.ReasonRenderFailed && app.Status.ObservedGeneration == app.Generation &&
			stalled.Status == metav1.ConditionTrue && cond(app, flotillav1.ConditionReady).Status == metav1.ConditionFalse, fmt.Sprint(app.Status.Conditions)
	})
}

// TestEvictedRendersStaySynced: with a render cache too small for two
// Applications, each one's render is dropped while the other syncs; both
// still sync, follow a new commit and heal drift (rendering again).
func TestEvictedRendersStaySynced(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	repo := gittest.New(t).Repo(t, "two")
	rev := repo.MustCommit(t, map[string]string{"one/cm.yaml": cmA, "two/cm.yaml": cmB}, "two apps")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"), func(o *agent.Options) { o.RenderCacheBytes = 1 })
	defer stop()
	require.NoError(t, c.Create(ctx, newApp("one", repo.URL, "one", "app-one", auto())))
	require.NoError(t, c.Create(ctx, newApp("two", repo.URL, "two", "app-two", auto())))
	waitSynced(t, c, "one", rev)
	waitSynced(t, c, "two", rev)

	rev2 := repo.MustCommit(t, map[string]string{"one/cm.yaml": strings.Replace(cmA, "blue", "green", 1)}, "green")
	refresh(t, c, "one")
	refresh(t, c, "two")
	waitSynced(t, c, "one", rev2)
	waitSynced(t, c, "two", rev2)
	cm, err := configMap(t, c, "app-one", "a")
	require.NoError(t, err)
	assert.Equal(t, "green", cm.Data["color"])

	cm.Data["color"] = "red"
	require.NoError(t, c.Update(ctx, cm, client.FieldOwner("someone-else")))
	eventually(t, 30*time.Second, "drift on a healed", func() (bool, string) {
		cm, err := configMap(t, c, "app-one", "a")
		require.NoError(t, err)
		return cm.Data["color"] == "green", cm.Data["color"]
	})
}

// TestHubApplicationsAreNotSynced: on the hub's own cluster (in-cluster),
// a hub Application in the agent's namespace (delivery's finalizer marks
// it) is not the agent's: only its delivered copy is.
func TestHubApplicationsAreNotSynced(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	repo := gittest.New(t).Repo(t, "hub")
	rev := repo.MustCommit(t, map[string]string{"app/cm.yaml": cmA}, "first")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	hubApp := newApp("hub-app", repo.URL, "app", "hub-ns", auto())
	hubApp.Finalizers = []string{flotillav1.FinalizerDelivery}
	require.NoError(t, c.Create(ctx, hubApp))
	copyApp := newApp("default.hub-app", repo.URL, "app", "copy-ns", auto())
	copyApp.Annotations = map[string]string{flotillav1.AnnotationHubNamespace: "default", flotillav1.AnnotationHubName: "hub-app"}
	require.NoError(t, c.Create(ctx, copyApp))
	waitSynced(t, c, "default.hub-app", rev)
	app := getApp(t, c, "hub-app")
	assert.Empty(t, app.Status.Sync.Revision, "the agent synced a hub Application")
	assert.NotContains(t, app.Finalizers, flotillav1.FinalizerResources)
	_, err := configMap(t, c, "hub-ns", "a")
	assert.True(t, apierrors.IsNotFound(err), "the hub Application's objects were applied: %v", err)
}
