package hub_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
)

// TestLabellingAClusterDeploysThere: labelling a registered MemberCluster
// so that a set selects it deploys the set's apps there; removing the label
// removes them.
func TestLabellingAClusterDeploysThere(t *testing.T) {
	f := startFleet(t, "east", "west")
	ctx := t.Context()
	hc := f.hub.Client
	setLabel(t, hc, "west", "env", "dev")
	f.startHub(t, hub.Options{})
	require.NoError(t, hc.Create(ctx, appSet("guestbook", "web", "api")))

	eventually(t, 30*time.Second, "east has both apps", func() (bool, string) {
		return len(spokeApps(t, f.spokes["east"].Client)) == 2, ""
	})
	require.Empty(t, spokeApps(t, f.spokes["west"].Client), "west is not selected yet")

	start := time.Now()
	setLabel(t, hc, "west", "env", "prod")
	eventually(t, 30*time.Second, "west has both apps", func() (bool, string) {
		apps := spokeApps(t, f.spokes["west"].Client)
		return len(apps) == 2, strings.Join(keys(apps), ",")
	})
	t.Logf("labelled cluster received its 2 Applications in %s", time.Since(start).Round(time.Millisecond))

	setLabel(t, hc, "west", "env", "dev")
	eventually(t, 30*time.Second, "west emptied", func() (bool, string) {
		return len(spokeApps(t, f.spokes["west"].Client)) == 0, ""
	})
	require.Len(t, spokeApps(t, f.spokes["east"].Client), 2, "east is untouched")

	// A removed cluster leaves the pool: its cache and watches stop.
	require.Contains(t, f.pool.Names(), "west")
	require.NoError(t, hc.Delete(ctx, &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "west"}}))
	eventually(t, 20*time.Second, "west out of the pool", func() (bool, string) {
		return !slices.Contains(f.pool.Names(), "west"), strings.Join(f.pool.Names(), ",")
	})
	require.Contains(t, f.pool.Names(), "east")
}

func setLabel(t *testing.T, c client.Client, cluster, key, value string) {
	t.Helper()
	mc := &flotillav1.MemberCluster{}
	require.NoError(t, c.Get(t.Context(), types.NamespacedName{Name: cluster}, mc))
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Labels[key] = value
	require.NoError(t, c.Patch(t.Context(), mc, patch))
}
