package hub_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
)

// TestSpokeCacheThatNeverSyncs: a spoke where the hub may not watch
// Applications (no Role in the agent namespace) is reported not Ready,
// saying why, instead of hanging silently; granting the Role heals it; a
// replaced connection's cache (and the watch on it) stops.
func TestSpokeCacheThatNeverSyncs(t *testing.T) {
	f := startFleet(t, "spoke")
	ctx := t.Context()
	hc, spoke := f.hub.Client, f.spokes["spoke"]
	require.NoError(t, spoke.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "norbac"}}))
	f.addClusterIn(t, "norbac", "norbac", spoke.UserKubeconfig(t, "flotilla-hub"), nil)
	stop := f.startHub(t, hub.Options{GitTimeout: 2 * time.Second, SpokeSyncTimeout: 2 * time.Second})
	defer stop()

	ready := func(name string) metav1.Condition {
		mc := &flotillav1.MemberCluster{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: name}, mc))
		return condition(mc.Status.Conditions, flotillav1.ConditionReady)
	}
	eventually(t, 30*time.Second, "norbac not Ready: its cache did not sync", func() (bool, string) {
		c := ready("norbac")
		return c.Reason == flotillav1.ReasonSpokeCacheNotSynced && c.Status == metav1.ConditionFalse, c.Reason + ": " + c.Message
	})
	require.Equal(t, metav1.ConditionTrue, ready("spoke").Status, "the other cluster on the same apiserver is fine")

	old, ok := f.pool.Get("norbac")
	require.True(t, ok)
	// New credentials replace the pooled connection: the old cache stops.
	require.NoError(t, hc.Update(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "norbac-kubeconfig", Namespace: ns},
		Data: map[string][]byte{"value": spoke.UserKubeconfig(t, "flotilla-hub")}}))
	select {
	case <-old.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("the replaced spoke connection's cache is still running")
	}

	role, binding := spokes.HubRBAC("norbac", rbacv1.Subject{Kind: "User", Name: "flotilla-hub", APIGroup: rbacv1.GroupName})
	require.NoError(t, client.IgnoreAlreadyExists(spoke.Client.Create(ctx, role)))
	require.NoError(t, client.IgnoreAlreadyExists(spoke.Client.Create(ctx, binding)))
	eventually(t, 60*time.Second, "norbac Ready once the hub may watch", func() (bool, string) {
		c := ready("norbac")
		return c.Status == metav1.ConditionTrue, c.Reason + ": " + c.Message
	})
}
