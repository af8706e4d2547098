package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

func bumpImages(t *testing.T, repo interface {
	Commit(map[string]string, string) (string, error)
}, apps []string, tag string) string {
	t.Helper()
	files := map[string]string{}
	for _, app := range apps {
		files["apps/"+app+"/kustomization.yaml"] = localfleet.SampleKustomization(app, tag)
	}
	rev, err := repo.Commit(files, "Roll out "+tag)
	check(t, err)
	return rev
}

// appsOn keeps the Applications destined for one cluster.
func appsOn(apps map[string]flotillav1.Application, cluster string) map[string]flotillav1.Application {
	out := map[string]flotillav1.Application{}
	for n, a := range apps {
		if a.Spec.Destination.Cluster == cluster {
			out[n] = a
		}
	}
	return out
}

func healthyAt(apps map[string]flotillav1.Application, rev string, want int) (bool, string) {
	var bad []string
	for n, a := range apps {
		if a.Status.Health.Status != flotillav1.HealthHealthy || a.Status.Sync.Revision != rev {
			bad = append(bad, fmt.Sprintf("%s=%s@%.7s", n, a.Status.Health.Status, a.Status.Sync.Revision))
		}
	}
	return len(apps) == want && len(bad) == 0, fmt.Sprintf("%d/%d, not there: %v", len(apps), want, bad)
}

// Scenario 6: a spoke's apiserver dies. Its MemberCluster goes not-Ready
// within the grace period, the other spoke keeps converging, and when the
// apiserver is back the spoke converges with no manual step.
// leavesHealthy waits (within the agent's Lease duration plus 5 s) for the
// set to stop saying Healthy and for every Application on cluster to be
// Unknown for reason, with the hub's explanation; it returns how long.
func leavesHealthy(t *testing.T, f *localfleet.Fleet, cluster, reason, says string) time.Duration {
	t.Helper()
	took := eventually(t, localfleet.AgentLeaseDuration+5*time.Second, "the set leaves Healthy ("+cluster+" "+reason+")", func() (bool, string) {
		c := conditionOf(setStatus(t, f, "default", "fleet").Conditions, flotillav1.ConditionHealthy)
		return c.Status != metav1.ConditionTrue, string(c.Status) + " " + c.Message
	})
	eventually(t, 15*time.Second, "every Application on "+cluster+" Unknown: "+reason, func() (bool, string) {
		for _, a := range appsOn(appsOf(t, f, "default", "fleet"), cluster) {
			h := conditionOf(a.Status.Conditions, flotillav1.ConditionHealthy)
			if a.Status.Health.Status != flotillav1.HealthUnknown || h.Reason != reason || !strings.Contains(h.Message, says) {
				return false, a.Name + ": " + string(a.Status.Health.Status) + " " + h.Reason + ": " + h.Message
			}
		}
		return true, ""
	})
	return took
}

// setHealthy waits for the set's own Healthy condition and summary to
// follow its Applications (the status controller writes at most once a
// second): a failure is then seen from a current condition, not a stale one.
func setHealthy(t *testing.T, f *localfleet.Fleet, name string, want int32) {
	t.Helper()
	eventually(t, 30*time.Second, "the set's own status Healthy", func() (bool, string) {
		st := setStatus(t, f, "default", name)
		c := conditionOf(st.Conditions, flotillav1.ConditionHealthy)
		return c.Status == metav1.ConditionTrue && st.Summary.Healthy == want, fmt.Sprintf("%s %s, %d healthy", c.Status, c.Message, st.Summary.Healthy)
	})
}

// TestSpokeAPIServerKilled: an agent that dies and a spoke apiserver that
// dies each turn their Applications Unknown (never a stale Healthy) within
// the agent's Lease duration plus 5 s, and `flotilla status` says why; each
// comes back Healthy when restarted, and nothing is deleted meanwhile.
func TestSpokeAPIServerKilled(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev1, err := f.SampleRepo()
	check(t, err)
	check(t, f.ApplyYAML(ctx, "fleet", listSet("fleet", repo.URL, []string{"spoke-1", "spoke-2"}, threeApps, "")))
	eventually(t, 2*time.Minute, "v1 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev1) })
	setHealthy(t, f, "fleet", 6)

	check(t, f.Spokes["spoke-1"].Agent.Kill())
	took := leavesHealthy(t, f, "spoke-1", flotillav1.ReasonAgentUnavailable, "last agent heartbeat at")
	t.Logf("the set left Healthy %s after spoke-1's agent died (Lease %s)", took.Round(10*time.Millisecond), localfleet.AgentLeaseDuration)
	check(t, f.StartAgent("spoke-1"))
	eventually(t, time.Minute, "Healthy again once the agent is back", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev1) })
	setHealthy(t, f, "fleet", 6)

	check(t, f.Spokes["spoke-2"].APIServer.Kill())
	took = leavesHealthy(t, f, "spoke-2", flotillav1.ReasonClusterUnreachable, "no report since")
	t.Logf("the set left Healthy %s after spoke-2's apiserver died", took.Round(10*time.Millisecond))
	out := mustOut(t)(f.Flotilla(ctx, "status", "fleet", "-n", "default"))
	t.Logf("flotilla status fleet, spoke-2 down:\n%s", out)
	if !regexpMatch(`spoke-2\s+\S+\s+Unknown\s+Unknown\s+\S+\s+\S+\s+ClusterUnreachable: no report since`, out) || strings.HasSuffix(strings.SplitN(out, "\n", 2)[0], ", Healthy") {
		t.Fatalf("flotilla status does not show spoke-2's apps Unknown with the reason, and the set not Healthy:\n%s", out)
	}
	took = eventually(t, time.Minute, "spoke-2 not Ready", func() (bool, string) {
		mc := &flotillav1.MemberCluster{}
		check(t, f.Hub.Client.Get(ctx, types.NamespacedName{Name: "spoke-2"}, mc))
		c := conditionOf(mc.Status.Conditions, flotillav1.ConditionReady)
		return c.Status != metav1.ConditionTrue, c.Reason
	})
	t.Logf("spoke-2 reported not Ready %s after its apiserver died", took.Round(10*time.Millisecond))
	out = mustOut(t)(f.Flotilla(ctx, "cluster", "list"))
	if !strings.Contains(out, "spoke-2") || !regexpMatch(`spoke-2\s+(False|Unknown)`, out) {
		t.Fatalf("flotilla cluster list does not show spoke-2 down:\n%s", out)
	}

	rev2 := bumpImages(t, repo, threeApps, "v2")
	eventually(t, 2*time.Minute, "spoke-1 converges to v2 while spoke-2 is down", func() (bool, string) {
		return healthyAt(appsOn(appsOf(t, f, "default", "fleet"), "spoke-1"), rev2, 3)
	})
	if n := len(appsOf(t, f, "default", "fleet")); n != 6 {
		t.Fatalf("the hub has %d Applications, want 6: nothing may be deleted for a down cluster", n)
	}

	check(t, f.Spokes["spoke-2"].StartAPIServer(ctx))
	took = eventually(t, 3*time.Minute, "spoke-2 converges to v2 after coming back", func() (bool, string) {
		return healthyAt(appsOn(appsOf(t, f, "default", "fleet"), "spoke-2"), rev2, 3)
	})
	t.Logf("spoke-2 converged %s after its apiserver came back", took.Round(10*time.Millisecond))
	mc := &flotillav1.MemberCluster{}
	check(t, f.Hub.Client.Get(ctx, types.NamespacedName{Name: "spoke-2"}, mc))
	if c := conditionOf(mc.Status.Conditions, flotillav1.ConditionReady); c.Status != metav1.ConditionTrue {
		t.Fatalf("spoke-2 not Ready again: %+v", c)
	}
}

// Scenario 7: the hub restarts in the middle of a rollout (a new app added
// to the set and a new commit): no Application is deleted or recreated, on
// the hub or on a spoke, and the rollout completes.
func TestHubRestartMidRollout(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev1, err := f.SampleRepo()
	check(t, err)
	both := []string{"spoke-1", "spoke-2"}
	check(t, f.ApplyYAML(ctx, "fleet", listSet("fleet", repo.URL, both, threeApps[:2], "")))
	eventually(t, 2*time.Minute, "v1 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 4, rev1) })
	hubBefore := appsOf(t, f, "default", "fleet")
	spokeBefore := map[string]map[string]flotillav1.Application{}
	for _, s := range both {
		spokeBefore[s] = spokeApps(t, f.Spokes[s])
	}

	rev2 := bumpImages(t, repo, threeApps, "v2")
	check(t, f.ApplyYAML(ctx, "fleet", listSet("fleet", repo.URL, both, threeApps, "")))
	time.Sleep(300 * time.Millisecond)
	check(t, f.HubProcess.Stop(30*time.Second))
	time.Sleep(2 * time.Second)
	check(t, f.StartHub())

	eventually(t, 3*time.Minute, "the rollout completes", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev2) })
	after := appsOf(t, f, "default", "fleet")
	for name, a := range hubBefore {
		if after[name].UID != a.UID {
			t.Fatalf("hub Application %s was recreated", name)
		}
	}
	for _, s := range both {
		now := spokeApps(t, f.Spokes[s])
		for name, a := range spokeBefore[s] {
			if now[name].UID != a.UID {
				t.Fatalf("spoke %s Application %s was recreated", s, name)
			}
		}
	}
}

// Scenario 8: the Git server goes down. Nothing is deleted anywhere, and
// the set's condition says why; when it comes back everything converges.
func TestGitServerDown(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev1, err := f.SampleRepo()
	check(t, err)
	for _, s := range []string{"spoke-1", "spoke-2"} {
		mustOut(t)(f.Flotilla(ctx, "cluster", "label", s, "env=dev"))
	}
	// Git directories × clusters: the generator itself needs Git.
	check(t, f.ApplyYAML(ctx, "fleet", localfleet.SampleAppSet("fleet", "default", repo.URL, "dev")))
	eventually(t, 2*time.Minute, "v1 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev1) })

	check(t, f.StopGit())
	rev2 := bumpImages(t, repo, threeApps, "v2") // pushed while the server is down
	took := eventually(t, 2*time.Minute, "the set says Git is unreachable", func() (bool, string) {
		c := conditionOf(setStatus(t, f, "default", "fleet").Conditions, flotillav1.ConditionParametersGenerated)
		return c.Status == metav1.ConditionFalse && strings.Contains(c.Message, repo.URL) && strings.Contains(c.Message, "left unchanged"), c.Message
	})
	t.Logf("the set reported Git down %s after it stopped", took.Round(10*time.Millisecond))
	// The agents run the commit the hub pinned, which they hold: they need
	// no Git until the hub pins another, so every Application stays Healthy
	// at v1 (the set, not the agents, says Git is down).
	if ok, msg := allHealthyAt(t, f, "default", "fleet", 6, rev1); !ok {
		t.Fatalf("the Applications left their pinned commit while Git is down: %s", msg)
	}
	if n := len(appsOf(t, f, "default", "fleet")); n != 6 {
		t.Fatalf("%d Applications on the hub while Git is down, want 6", n)
	}
	for _, s := range []string{"spoke-1", "spoke-2"} {
		for _, app := range threeApps {
			if deployment(t, f.Spokes[s], app, app) == nil {
				t.Fatalf("%s was deleted from %s while Git was down", app, s)
			}
		}
	}

	check(t, f.StartGit())
	took = eventually(t, 3*time.Minute, "v2 everywhere after Git is back", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev2) })
	t.Logf("converged to v2 %s after Git came back", took.Round(10*time.Millisecond))
	c := conditionOf(setStatus(t, f, "default", "fleet").Conditions, flotillav1.ConditionParametersGenerated)
	if c.Status != metav1.ConditionTrue {
		eventually(t, time.Minute, "ParametersGenerated back to True", func() (bool, string) {
			c := conditionOf(setStatus(t, f, "default", "fleet").Conditions, flotillav1.ConditionParametersGenerated)
			return c.Status == metav1.ConditionTrue, c.Message
		})
	}
}

// Scenario 9: one app has a manifest the apiserver rejects: only that app
// is Degraded, with the apiserver's message; every other app is Healthy.
func TestBrokenManifest(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, err := f.Git.CreateRepo("fleet")
	check(t, err)
	files := localfleet.SampleFiles([]string{"guestbook", "podinfo", "broken"}, "v1")
	files["apps/broken/deployment.yaml"] = strings.Replace(files["apps/broken/deployment.yaml"], "replicas: 2", "replicas: -1", 1)
	rev, err := repo.Commit(files, "apps, one broken")
	check(t, err)
	check(t, f.ApplyYAML(ctx, "fleet", listSet("fleet", repo.URL, []string{"spoke-1", "spoke-2"}, []string{"guestbook", "podinfo", "broken"}, "")))
	eventually(t, 2*time.Minute, "broken Degraded with the apiserver's message, the others Healthy", func() (bool, string) {
		apps := appsOf(t, f, "default", "fleet")
		var bad []string
		for n, a := range apps {
			broken := strings.HasSuffix(n, "-broken")
			switch {
			case broken && (a.Status.Health.Status != flotillav1.HealthDegraded || !strings.Contains(a.Status.LastSyncError, "must be greater than or equal to 0")):
				bad = append(bad, fmt.Sprintf("%s=%s %q", n, a.Status.Health.Status, a.Status.LastSyncError))
			case !broken && (a.Status.Health.Status != flotillav1.HealthHealthy || a.Status.Sync.Revision != rev):
				bad = append(bad, fmt.Sprintf("%s=%s", n, a.Status.Health.Status))
			}
		}
		return len(apps) == 6 && len(bad) == 0, fmt.Sprint(len(apps), bad)
	})
	// The rest of the broken app (its Service) still applied.
	for _, s := range []string{"spoke-1", "spoke-2"} {
		if deployment(t, f.Spokes[s], "broken", "broken") != nil {
			t.Fatalf("the invalid Deployment exists on %s", s)
		}
	}
	out := mustOut(t)(f.Flotilla(ctx, "status", "fleet"))
	if !regexpMatch(`spoke-1\s+spoke-1-broken\s+\S+\s+Degraded`, out) {
		t.Fatalf("flotilla status fleet does not show the broken app:\n%s", out)
	}
	t.Log("\n" + out)
}
