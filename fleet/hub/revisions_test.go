package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

// TestHubPinsRevisions: the hub resolves the set's branch once per poll and
// pins every Application to that commit (the spoke copies carry it); a new
// commit moves every pin at the next poll, a refresh moves them at once;
// with Git unreachable the pins stay and the set says why.
func TestHubPinsRevisions(t *testing.T) {
	f := startFleet(t, "spoke-1", "spoke-2")
	ctx := t.Context()
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev1 := repo.MustCommit(t, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\n"}, "one")
	stop := f.startHub(t, hub.Options{GitPollInterval: 2 * time.Second})
	defer func() { stop() }()
	set := appSet("pinned", "web")
	set.Spec.Template.Spec.Source.RepoURL = repo.URL
	require.NoError(t, f.hub.Client.Create(ctx, set))
	pins := func(want string) func() (bool, string) {
		return func() (bool, string) {
			apps := hubApps(t, f.hub.Client, "pinned")
			for _, a := range apps {
				if a.Spec.Source.PinnedCommit != want || a.Spec.Source.TargetRevision != "main" {
					return false, a.Name + " pinned to " + a.Spec.Source.PinnedCommit
				}
			}
			for _, s := range f.spokes {
				for _, a := range spokeApps(t, s.Client) {
					if a.Spec.Source.PinnedCommit != want {
						return false, "spoke copy " + a.Name + " pinned to " + a.Spec.Source.PinnedCommit
					}
				}
			}
			return len(apps) == 2, fmt.Sprint(len(apps), " Applications")
		}
	}
	eventually(t, 30*time.Second, "every Application pinned to the branch's commit", pins(rev1))

	rev2 := repo.MustCommit(t, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\ndata: {a: b}\n"}, "two")
	eventually(t, 15*time.Second, "the pins move at the next poll", pins(rev2))

	// A refresh re-resolves at once, however long the poll interval.
	stop()
	stop = f.startHub(t, hub.Options{GitPollInterval: time.Hour})
	rev3 := repo.MustCommit(t, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\ndata: {a: c}\n"}, "three")
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"now"}}}`, flotillav1.AnnotationRefresh))
	require.NoError(t, f.hub.Client.Patch(ctx, set, client.RawPatch("application/merge-patch+json", patch)))
	eventually(t, 15*time.Second, "a refresh moves the pins at once", pins(rev3))

	// Git down: nothing moves, and an Event says why.
	require.NoError(t, srv.Close())
	require.NoError(t, f.hub.Client.Patch(ctx, set, client.RawPatch("application/merge-patch+json", []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"again"}}}`, flotillav1.AnnotationRefresh)))))
	eventually(t, 30*time.Second, "an Event saying the revision could not be resolved", func() (bool, string) {
		var evs corev1.EventList
		require.NoError(t, f.hub.Client.List(ctx, &evs, client.InNamespace("default")))
		for _, e := range evs.Items {
			if e.Reason == flotillav1.ReasonRevisionUnresolved {
				return true, e.Message
			}
		}
		return false, fmt.Sprint(len(evs.Items), " Events")
	})
	ok, msg := pins(rev3)()
	require.True(t, ok, "the pins stay while Git is down: %s", msg)
}
