package hub_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
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

// reportAt writes a spoke copy's status as its agent does: Healthy (or
// health) at the commit the copy is pinned to, for its generation.
func reportAt(t *testing.T, c client.Client, health flotillav1.HealthStatusCode) {
	t.Helper()
	for _, a := range spokeApps(t, c) {
		a.Status.ObservedGeneration = a.Generation
		a.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: a.Spec.Source.PinnedCommit}
		a.Status.Health = flotillav1.HealthStatus{Status: health}
		now := metav1.Now()
		st := metav1.ConditionTrue
		if health != flotillav1.HealthHealthy {
			st = metav1.ConditionFalse
		}
		a.Status.Conditions = []metav1.Condition{
			{Type: flotillav1.ConditionSynced, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonSynced, Message: "synced", ObservedGeneration: a.Generation, LastTransitionTime: now},
			{Type: flotillav1.ConditionHealthy, Status: st, Reason: string(health), Message: string(health), ObservedGeneration: a.Generation, LastTransitionTime: now},
		}
		require.NoError(t, c.Status().Update(t.Context(), &a))
	}
}

// TestHubRollingUpdate: a set with two steps (canary, rest) moves the rest
// only after the canary reported Healthy at the new commit and baked; a
// promote during a long bake starts the next step, and the rollout's state
// sticks (the controller's own status write is not undone).
func TestHubRollingUpdate(t *testing.T) {
	f := startFleet(t, "spoke-1", "spoke-2")
	ctx := t.Context()
	for name, ring := range map[string]string{"spoke-1": "canary", "spoke-2": "rest"} {
		mc := &flotillav1.MemberCluster{}
		require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKey{Name: name}, mc))
		mc.Labels["ring"] = ring
		require.NoError(t, f.hub.Client.Update(ctx, mc))
	}
	for _, s := range f.spokes { // agents that renew their heartbeat: the hub can see them
		require.NoError(t, s.Client.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.AgentLeaseName, Namespace: ns},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent"), RenewTime: &metav1.MicroTime{Time: time.Now()}, LeaseDurationSeconds: ptr.To(int32(3600))}}))
	}
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev1 := repo.MustCommit(t, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\n"}, "one")
	stop := f.startHub(t, hub.Options{GitPollInterval: time.Hour})
	defer stop()
	set := appSet("rolling", "web")
	set.Spec.Template.Spec.Source.RepoURL = repo.URL
	bake := func(d time.Duration) *flotillav1.ApplicationSetStrategy {
		return &flotillav1.ApplicationSetStrategy{Type: flotillav1.StrategyRollingUpdate, RollingUpdate: &flotillav1.RollingUpdateStrategy{Steps: []flotillav1.RolloutStep{
			{Name: "canary", MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "ring", Operator: metav1.LabelSelectorOpIn, Values: []string{"canary"}}}, BakeTime: &metav1.Duration{Duration: d}},
			{Name: "rest"},
		}}}
	}
	set.Spec.Strategy = bake(time.Second)
	require.NoError(t, f.hub.Client.Create(ctx, set))
	pinned := func(spoke string) string {
		for _, a := range spokeApps(t, f.spokes[spoke].Client) {
			return a.Spec.Source.PinnedCommit
		}
		return ""
	}
	at := func(want1, want2 string, phase flotillav1.RolloutPhase) func() (bool, string) {
		return func() (bool, string) {
			s := &flotillav1.ApplicationSet{}
			require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKeyFromObject(set), s))
			ro := s.Status.Rollout
			got := fmt.Sprintf("spoke-1 %.7s, spoke-2 %.7s, rollout %+v", pinned("spoke-1"), pinned("spoke-2"), ro)
			return pinned("spoke-1") == want1 && pinned("spoke-2") == want2 && ro != nil && ro.Phase == phase, got
		}
	}
	refresh := func(v string) {
		patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, flotillav1.AnnotationRefresh, v))
		require.NoError(t, f.hub.Client.Patch(ctx, set, client.RawPatch("application/merge-patch+json", patch)))
	}
	eventually(t, 30*time.Second, "a new set starts Complete at the branch's commit", at(rev1, rev1, flotillav1.RolloutComplete))
	for _, s := range f.spokes {
		reportAt(t, s.Client, flotillav1.HealthHealthy)
	}

	rev2 := repo.MustCommit(t, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\ndata: {a: b}\n"}, "two")
	refresh("two")
	eventually(t, 15*time.Second, "the canary moves first", at(rev2, rev1, flotillav1.RolloutProgressing))
	time.Sleep(2 * time.Second) // what must not happen: the rest moving before the canary reported
	ok, msg := at(rev2, rev1, flotillav1.RolloutProgressing)()
	require.True(t, ok, "the rest moved before the canary was Healthy: %s", msg)
	reportAt(t, f.spokes["spoke-1"].Client, flotillav1.HealthHealthy)
	eventually(t, 15*time.Second, "after the canary's bake, the rest moves", at(rev2, rev2, flotillav1.RolloutProgressing))
	reportAt(t, f.spokes["spoke-2"].Client, flotillav1.HealthHealthy)
	eventually(t, 15*time.Second, "Complete", at(rev2, rev2, flotillav1.RolloutComplete))

	// A long bake, ended by a promote.
	updateSet(t, f.hub.Client, "rolling", func(s *flotillav1.ApplicationSet) { s.Spec.Strategy = bake(time.Hour) })
	rev3 := repo.MustCommit(t, map[string]string{"apps/web/cm.yaml": "kind: ConfigMap\ndata: {a: c}\n"}, "three")
	refresh("three")
	eventually(t, 15*time.Second, "the canary moves", at(rev3, rev2, flotillav1.RolloutProgressing))
	reportAt(t, f.spokes["spoke-1"].Client, flotillav1.HealthHealthy)
	eventually(t, 15*time.Second, "the canary bakes", at(rev3, rev2, flotillav1.RolloutBaking))
	patch := []byte(fmt.Sprintf(`{"metadata":{"annotations":{%q:"promote"}}}`, flotillav1.AnnotationRolloutAction))
	require.NoError(t, f.hub.Client.Patch(ctx, set, client.RawPatch("application/merge-patch+json", patch)))
	eventually(t, 15*time.Second, "promote starts the rest", at(rev3, rev3, flotillav1.RolloutProgressing))
	time.Sleep(2 * time.Second) // what must not happen: the rollout's state going back to the canary's bake
	ok, msg = at(rev3, rev3, flotillav1.RolloutProgressing)()
	require.True(t, ok, "after promote: %s", msg)
	s := &flotillav1.ApplicationSet{}
	require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKeyFromObject(set), s))
	require.Empty(t, s.Annotations[flotillav1.AnnotationRolloutAction], "the handled action is removed")
	reportAt(t, f.spokes["spoke-2"].Client, flotillav1.HealthHealthy)
	eventually(t, 15*time.Second, "Complete at the promoted commit", at(rev3, rev3, flotillav1.RolloutComplete))
}
