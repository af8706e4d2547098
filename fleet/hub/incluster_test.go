package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/delivery"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
)

// TestHubAsItsOwnSpoke: the hub's own cluster registered as "in-cluster"
// (Argo CD's usual App of Apps setup) gets its Applications' copies in the
// agent namespace, and those copies are never delivered again nor counted
// as the hub's Applications.
func TestHubAsItsOwnSpoke(t *testing.T) {
	f := startFleet(t)
	ctx := t.Context()
	hc := f.hub.Client
	role, binding := spokes.HubRBAC(ns, rbacv1.Subject{Kind: "User", Name: "flotilla-hub", APIGroup: rbacv1.GroupName})
	require.NoError(t, hc.Create(ctx, role))
	require.NoError(t, hc.Create(ctx, binding))
	f.addCluster(t, "in-cluster", f.hub.UserKubeconfig(t, "flotilla-hub"), map[string]string{"env": "prod"})
	stop := f.startHub(t, hub.Options{GitTimeout: 2 * time.Second})
	defer stop()

	require.NoError(t, hc.Create(ctx, appSet("apps", "web", "api")))
	eventually(t, 30*time.Second, "both delivered to the hub itself", func() (bool, string) {
		var list flotillav1.ApplicationList
		require.NoError(t, hc.List(ctx, &list, client.InNamespace(ns)))
		var names []string
		for _, a := range list.Items {
			names = append(names, a.Name)
		}
		return len(list.Items) == 2, strings.Join(names, ",")
	})
	time.Sleep(2 * time.Second) // a copy of a copy would appear now if delivery took copies for its own
	var list flotillav1.ApplicationList
	require.NoError(t, hc.List(ctx, &list))
	var names []string
	for _, a := range list.Items {
		names = append(names, a.Namespace+"/"+a.Name)
	}
	assert.ElementsMatch(t, []string{"default/in-cluster-web", "default/in-cluster-api",
		ns + "/" + delivery.SpokeName("default", "in-cluster-web"), ns + "/" + delivery.SpokeName("default", "in-cluster-api")}, names)

	eventually(t, 30*time.Second, "the set and the cluster count 2 Applications, not 4", func() (bool, string) {
		set := &flotillav1.ApplicationSet{}
		require.NoError(t, hc.Get(ctx, key("apps"), set))
		mc := &flotillav1.MemberCluster{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "in-cluster"}, mc))
		return set.Status.Summary.Applications == 2 && mc.Status.Applications.Total == 2,
			toYAML(set.Status.Summary) + toYAML(mc.Status.Applications)
	})
	for _, a := range list.Items {
		if flotillav1.IsSpokeCopy(&a) {
			assert.NotContains(t, a.Finalizers, flotillav1.FinalizerDelivery, "delivery took its copy %s for a hub Application", a.Name)
			assert.Empty(t, condition(a.Status.Conditions, flotillav1.ConditionDelivered).Status, "delivery wrote %s's status", a.Name)
		}
	}
}
