package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

var threeApps = []string{"guestbook", "podinfo", "redis"}

// Scenario 1: a list generator with 2 clusters × 3 apps; every app turns
// Healthy on its cluster at the commit pushed, and `flotilla status` says so.
func TestListGenerator2x3(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev, err := f.SampleRepo()
	check(t, err)
	check(t, f.ApplyYAML(ctx, "list", listSet("list", repo.URL, []string{"spoke-1", "spoke-2"}, threeApps, "")))
	// kubectl wait on the set's Ready condition returns once it is Healthy.
	waited := make(chan error, 1)
	go func() {
		_, err := f.Kubectl(ctx, "wait", "--for=condition=Ready", "applicationset/list", "-n", "default", "--timeout=3m")
		waited <- err
	}()
	took := eventually(t, 2*time.Minute, "6 Applications Healthy at "+rev[:7], func() (bool, string) { return allHealthyAt(t, f, "default", "list", 6, rev) })
	t.Logf("2 clusters × 3 apps Healthy in %s", took)
	check(t, <-waited)
	st := setStatus(t, f, "default", "list")
	if c := conditionOf(st.Conditions, flotillav1.ConditionHealthy); c.Status != metav1.ConditionTrue || st.Summary.Healthy != 6 {
		t.Fatalf("kubectl wait --for=condition=Ready returned before the set was Healthy: %+v, summary %+v", c, st.Summary)
	}
	requireCurrent(t, f, &flotillav1.ApplicationSet{}, types.NamespacedName{Namespace: "default", Name: "list"})
	for name := range appsOf(t, f, "default", "list") {
		requireCurrent(t, f, &flotillav1.Application{}, types.NamespacedName{Namespace: "default", Name: name})
	}
	requireCurrent(t, f, &flotillav1.MemberCluster{}, types.NamespacedName{Name: "spoke-1"})
	for _, spoke := range []string{"spoke-1", "spoke-2"} {
		for _, app := range threeApps {
			d := deployment(t, f.Spokes[spoke], app, app)
			if d == nil || d.Status.AvailableReplicas != 2 {
				t.Fatalf("%s on %s: deployment not available: %+v", app, spoke, d)
			}
		}
	}
	// The set's status aggregates its Applications asynchronously (at most
	// one write a second per set), so it may trail them briefly.
	eventually(t, 15*time.Second, "flotilla status shows the rollout 6/6 on "+rev[:7], func() (bool, string) {
		out, err := f.Flotilla(ctx, "status")
		check(t, err)
		return strings.Contains(out, "6/6 on "+rev[:7]), out
	})
}

// Scenario 2: add a cluster, both ways — a new list element, and labelling
// a registered MemberCluster so that a clusters generator selects it. Every
// app of every matching set lands there and turns Healthy.
func TestAddCluster(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2", "spoke-3"})
	ctx := context.Background()
	tenApps := make([]string, 10)
	for i := range tenApps {
		tenApps[i] = fmt.Sprintf("app-%02d", i)
	}
	repo, err := f.Git.CreateRepo("fleet")
	check(t, err)
	rev, err := repo.Commit(localfleet.SampleFiles(append(tenApps, threeApps...), "v1"), "apps")
	check(t, err)

	t.Run("a new list element", func(t *testing.T) {
		check(t, f.ApplyYAML(ctx, "list", listSet("list", repo.URL, []string{"spoke-1"}, threeApps, "")))
		eventually(t, 2*time.Minute, "3 apps on spoke-1", func() (bool, string) { return allHealthyAt(t, f, "default", "list", 3, rev) })
		start := time.Now()
		check(t, f.ApplyYAML(ctx, "list", listSet("list", repo.URL, []string{"spoke-1", "spoke-2"}, threeApps, "")))
		eventually(t, 2*time.Minute, "3 more apps on spoke-2", func() (bool, string) { return allHealthyAt(t, f, "default", "list", 6, rev) })
		t.Logf("ADD-CLUSTER list element: 3 apps Healthy on the new cluster in %s", time.Since(start).Round(10*time.Millisecond))
	})

	t.Run("labelling a registered cluster", func(t *testing.T) {
		var docs []string
		for i, set := range [][]string{tenApps[:5], tenApps[5:]} {
			// Two sets select env=prod: every app of both must land.
			doc := strings.Replace(localfleet.SampleAppSet(fmt.Sprintf("prod-%d", i), "default", repo.URL, "prod"), "directories: [{path: 'apps/*'}]",
				"directories: [{path: 'apps/app-0*'}]", 1)
			doc += fmt.Sprintf("  # apps %v\n", set)
			docs = append(docs, strings.Replace(doc, "{{ .name }}-{{ .path.basename }}'}", "{{ .name }}-{{ .path.basename }}-"+fmt.Sprint(i)+"'}", 1))
		}
		// Set 0 takes app-00..04, set 1 app-05..09 (selector on the path).
		docs[0] = strings.Replace(docs[0], "directories: [{path: 'apps/app-0*'}]", "directories: [{path: 'apps/app-0[0-4]'}]", 1)
		docs[1] = strings.Replace(docs[1], "directories: [{path: 'apps/app-0*'}]", "directories: [{path: 'apps/app-0[5-9]'}]", 1)
		for i, d := range docs {
			check(t, f.ApplyYAML(ctx, fmt.Sprintf("prod-%d", i), d))
		}
		mustOut(t)(f.Flotilla(ctx, "cluster", "label", "spoke-3", "env=prod"))
		eventually(t, 2*time.Minute, "10 apps on spoke-3", func() (bool, string) {
			ok0, m0 := allHealthyAt(t, f, "default", "prod-0", 5, rev)
			ok1, m1 := allHealthyAt(t, f, "default", "prod-1", 5, rev)
			return ok0 && ok1, m0 + " | " + m1
		})
		// Now the measured part: a second registered cluster joins by label.
		start := time.Now()
		mustOut(t)(f.Flotilla(ctx, "cluster", "label", "spoke-2", "env=prod"))
		eventually(t, 2*time.Minute, "10 apps on spoke-2", func() (bool, string) {
			ok0, m0 := allHealthyAt(t, f, "default", "prod-0", 10, rev)
			ok1, m1 := allHealthyAt(t, f, "default", "prod-1", 10, rev)
			return ok0 && ok1, m0 + " | " + m1
		})
		t.Logf("ADD-CLUSTER label: 10 apps (2 sets) Healthy on the new cluster in %s", time.Since(start).Round(10*time.Millisecond))
		for _, app := range tenApps {
			if d := deployment(t, f.Spokes["spoke-2"], app, app); d == nil || d.Status.AvailableReplicas != 2 {
				t.Fatalf("%s not available on spoke-2", app)
			}
		}
	})
}

// Scenario 3: removing a cluster from the list deletes its apps from it,
// unless the set is create-only (the Application stays) or the template
// preserves resources on deletion (the workload stays).
func TestRemoveCluster(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev, err := f.SampleRepo()
	check(t, err)
	both, one := []string{"spoke-1", "spoke-2"}, []string{"spoke-1"}
	createOnly := "  syncPolicy: {applicationsSync: create-only}\n"
	preserve := "  templatePatch: |\n    spec: {syncPolicy: {preserveResourcesOnDeletion: true}}\n"
	sets := map[string]func([]string) string{
		"plain":       func(c []string) string { return listSet("plain", repo.URL, c, []string{"guestbook"}, "") },
		"create-only": func(c []string) string { return listSet("create-only", repo.URL, c, []string{"podinfo"}, createOnly) },
		"preserve":    func(c []string) string { return listSet("preserve", repo.URL, c, []string{"redis"}, preserve) },
	}
	for name, doc := range sets {
		check(t, f.ApplyYAML(ctx, name, doc(both)))
	}
	for name := range sets {
		eventually(t, 2*time.Minute, name+" on both clusters", func() (bool, string) { return allHealthyAt(t, f, "default", name, 2, rev) })
	}
	for name, doc := range sets {
		check(t, f.ApplyYAML(ctx, name, doc(one)))
	}
	s2 := f.Spokes["spoke-2"]
	eventually(t, time.Minute, "guestbook removed from spoke-2", func() (bool, string) {
		return deployment(t, s2, "guestbook", "guestbook") == nil && len(appsOf(t, f, "default", "plain")) == 1, "still there"
	})
	eventually(t, time.Minute, "redis's Application removed, its workload kept", func() (bool, string) {
		return len(appsOf(t, f, "default", "preserve")) == 1, fmt.Sprint(len(appsOf(t, f, "default", "preserve")))
	})
	// Give the agent time to (wrongly) prune before checking what must stay.
	time.Sleep(5 * time.Second)
	if deployment(t, s2, "redis", "redis") == nil {
		t.Fatal("preserveResourcesOnDeletion: redis was deleted from spoke-2")
	}
	if _, ok := appsOf(t, f, "default", "create-only")["spoke-2-podinfo"]; !ok {
		t.Fatal("create-only: the set deleted spoke-2-podinfo")
	}
	if deployment(t, s2, "podinfo", "podinfo") == nil {
		t.Fatal("create-only: podinfo was deleted from spoke-2")
	}
	if deployment(t, f.Spokes["spoke-1"], "guestbook", "guestbook") == nil {
		t.Fatal("spoke-1 lost guestbook")
	}
}

// Scenario 4: a commit changing the image tag rolls out everywhere, and the
// set's status shows the rollout counts moving to the new revision.
func TestGitCommitRollsOut(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev1, err := f.SampleRepo()
	check(t, err)
	check(t, f.ApplyYAML(ctx, "fleet", listSet("fleet", repo.URL, []string{"spoke-1", "spoke-2"}, threeApps, "")))
	eventually(t, 2*time.Minute, "v1 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev1) })

	rev2 := bumpImages(t, repo, threeApps, "v2")
	start := time.Now()
	var seen []string
	eventually(t, 2*time.Minute, "v2 everywhere", func() (bool, string) {
		st := setStatus(t, f, "default", "fleet")
		n := int32(0)
		for _, r := range st.Revisions {
			if r.Revision == rev2 {
				n = r.Healthy
			}
		}
		obs := fmt.Sprintf("%d/6", n)
		if len(seen) == 0 || seen[len(seen)-1] != obs {
			seen = append(seen, obs)
		}
		ok, msg := allHealthyAt(t, f, "default", "fleet", 6, rev2)
		return ok && n == 6, msg
	})
	t.Logf("v2 Healthy on 6 Applications %s after the commit; rollout counts seen: %v", time.Since(start).Round(10*time.Millisecond), seen)
	if len(seen) < 2 || seen[0] == "6/6" {
		t.Fatalf("the set's status never showed the rollout moving: %v", seen)
	}
	for _, spoke := range []string{"spoke-1", "spoke-2"} {
		for _, app := range threeApps {
			d := deployment(t, f.Spokes[spoke], app, app)
			if img := d.Spec.Template.Spec.Containers[0].Image; img != "registry.example/"+app+":v2" {
				t.Fatalf("%s on %s runs %s", app, spoke, img)
			}
		}
	}
	out, err := f.Flotilla(ctx, "status", "fleet")
	check(t, err)
	if !strings.Contains(out, "6/6 on "+rev2[:7]) {
		t.Fatalf("flotilla status fleet:\n%s", out)
	}
}

// Scenario 5: a kubectl edit on a spoke is reverted with selfHeal, and shown
// OutOfSync without it.
func TestDrift(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1"})
	ctx := context.Background()
	repo, rev, err := f.SampleRepo()
	check(t, err)
	check(t, f.ApplyYAML(ctx, "heal", listSet("heal", repo.URL, []string{"spoke-1"}, []string{"guestbook"}, "")))
	check(t, f.ApplyYAML(ctx, "watch", strings.Replace(listSet("watch", repo.URL, []string{"spoke-1"}, []string{"podinfo"}, ""), "selfHeal: true", "selfHeal: false", 1)))
	check(t, f.ApplyYAML(ctx, "scaled", listSet("scaled", repo.URL, []string{"spoke-1"}, []string{"redis"},
		"      ignoreDifferences: [{group: apps, kind: Deployment, jsonPointers: [/spec/replicas]}]\n")))
	eventually(t, 2*time.Minute, "all three Healthy", func() (bool, string) {
		a, m1 := allHealthyAt(t, f, "default", "heal", 1, rev)
		b, m2 := allHealthyAt(t, f, "default", "watch", 1, rev)
		c, m3 := allHealthyAt(t, f, "default", "scaled", 1, rev)
		return a && b && c, m1 + m2 + m3
	})
	// An HPA-like writer (field manager kube-controller-manager) scales
	// redis up and down while selfHeal is on: with spec.replicas ignored,
	// the agent never fights it.
	for _, n := range []int32{3, 4, 3, 4} {
		d := deployment(t, f.Spokes["spoke-1"], "redis", "redis")
		d.Spec.Replicas = &n
		check(t, f.Spokes["spoke-1"].Client.Update(ctx, d, client.FieldOwner("kube-controller-manager")))
		time.Sleep(time.Second)
	}
	for _, app := range []string{"guestbook", "podinfo"} {
		mustOut(t)(f.Kubectl(ctx, "--context", "spoke-1", "-n", app, "scale", "deployment", app, "--replicas=5"))
	}
	took := eventually(t, time.Minute, "guestbook scaled back to 2 (selfHeal)", func() (bool, string) {
		d := deployment(t, f.Spokes["spoke-1"], "guestbook", "guestbook")
		return *d.Spec.Replicas == 2, fmt.Sprint(*d.Spec.Replicas)
	})
	t.Logf("drift reverted in %s", took)
	eventually(t, 30*time.Second, "the correction is counted on the hub", func() (bool, string) {
		a := &flotillav1.Application{}
		check(t, f.Hub.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "spoke-1-guestbook"}, a))
		return a.Status.DriftCorrections >= 1, fmt.Sprint(a.Status.DriftCorrections)
	})
	eventually(t, time.Minute, "podinfo shown OutOfSync on the hub", func() (bool, string) {
		a := &flotillav1.Application{}
		check(t, f.Hub.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "spoke-1-podinfo"}, a))
		return a.Status.Sync.Status == flotillav1.SyncStatusOutOfSync, string(a.Status.Sync.Status)
	})
	if d := deployment(t, f.Spokes["spoke-1"], "podinfo", "podinfo"); *d.Spec.Replicas != 5 {
		t.Fatalf("selfHeal off: podinfo was reverted to %d", *d.Spec.Replicas)
	}
	if d := deployment(t, f.Spokes["spoke-1"], "redis", "redis"); *d.Spec.Replicas != 4 {
		t.Fatalf("ignoreDifferences: the agent set redis's replicas to %d, the writer's were 4", *d.Spec.Replicas)
	}
	eventually(t, time.Minute, "redis Healthy at 4 replicas, no drift correction", func() (bool, string) {
		a := &flotillav1.Application{}
		check(t, f.Hub.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "spoke-1-redis"}, a))
		return a.Status.Health.Status == flotillav1.HealthHealthy && a.Status.Sync.Status == flotillav1.SyncStatusSynced && a.Status.DriftCorrections == 0,
			fmt.Sprintf("%s/%s, %d corrections", a.Status.Health.Status, a.Status.Sync.Status, a.Status.DriftCorrections)
	})
}

// TestRefreshFromTheHub: a set without automated sync deploys nothing until
// `flotilla refresh SET --cluster C --sync --wait` asks, through the hub,
// for one sync on C: that agent applies, reports the request handled, and
// the command prints how it came out; the other cluster stays untouched.
func TestRefreshFromTheHub(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev, err := f.SampleRepo()
	check(t, err)
	manual := strings.Replace(listSet("manual", repo.URL, []string{"spoke-1", "spoke-2"}, []string{"guestbook"}, ""), "automated: {prune: true, selfHeal: true}, ", "", 1)
	check(t, f.ApplyYAML(ctx, "manual", manual))
	eventually(t, 2*time.Minute, "OutOfSync at the commit on both clusters, nothing applied", func() (bool, string) {
		apps := appsOf(t, f, "default", "manual")
		for _, a := range apps {
			if a.Status.Sync.Status != flotillav1.SyncStatusOutOfSync || a.Status.Sync.Revision != rev {
				return false, a.Name + ": " + string(a.Status.Sync.Status)
			}
		}
		return len(apps) == 2, fmt.Sprint(len(apps))
	})
	if deployment(t, f.Spokes["spoke-1"], "guestbook", "guestbook") != nil {
		t.Fatal("a set without automated sync deployed on its own")
	}

	out := mustOut(t)(f.Flotilla(ctx, "refresh", "manual", "-n", "default", "--cluster", "spoke-1", "--sync", "--wait", "--timeout", "90s"))
	t.Logf("flotilla refresh manual --cluster spoke-1 --sync --wait:\n%s", out)
	if !regexpMatch(`Requested a refresh and sync of 1 Application`, out) || !regexpMatch(`spoke-1\s+spoke-1-guestbook\s+Synced\s+Healthy\s+`+rev[:7], out) {
		t.Fatalf("flotilla refresh --wait does not show spoke-1-guestbook Synced at %s:\n%s", rev[:7], out)
	}
	if deployment(t, f.Spokes["spoke-1"], "guestbook", "guestbook") == nil {
		t.Fatal("the sync request did not apply on spoke-1")
	}
	if deployment(t, f.Spokes["spoke-2"], "guestbook", "guestbook") != nil {
		t.Fatal("a sync requested for spoke-1 applied on spoke-2")
	}
	apps := appsOf(t, f, "default", "manual")
	if got := apps["spoke-2-guestbook"].Status.LastHandledSync; got != "" {
		t.Fatalf("spoke-2 handled a sync nobody asked it for: %q", got)
	}
}
