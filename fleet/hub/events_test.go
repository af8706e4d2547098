package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
)

// TestOneEventPerMissingCluster: 50 Applications for a cluster that does
// not exist are each Delivered=False with the reason, but the hub says so
// in one Event, not 50.
func TestOneEventPerMissingCluster(t *testing.T) {
	f := startFleet(t)
	ctx := t.Context()
	stop := f.startHub(t, hub.Options{})
	defer stop()
	for i := range 50 {
		require.NoError(t, f.hub.Client.Create(ctx, handMadeApp(fmt.Sprintf("lost-%02d", i), "nowhere", "https://git.example/deploy.git")))
	}
	eventually(t, 30*time.Second, "every Application ClusterNotFound", func() (bool, string) {
		var list flotillav1.ApplicationList
		require.NoError(t, f.hub.Client.List(ctx, &list))
		n := 0
		for _, a := range list.Items {
			if condition(a.Status.Conditions, flotillav1.ConditionDelivered).Reason == flotillav1.ReasonClusterNotFound {
				n++
			}
		}
		return n == 50, fmt.Sprint(n, "/50")
	})
	var evs corev1.EventList
	require.NoError(t, f.hub.Client.List(ctx, &evs))
	n := 0
	for _, e := range evs.Items {
		if e.Reason == flotillav1.ReasonClusterNotFound {
			n++
		}
	}
	require.Equal(t, 1, n, "one Event for the missing cluster")
}
