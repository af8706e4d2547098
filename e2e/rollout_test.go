package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

// rings are the rollout e2e's clusters and their ring labels.
var rings = map[string]string{"canary": "canary", "early-1": "early", "early-2": "early", "rest-1": "rest", "rest-2": "rest", "rest-3": "rest"}

const rolloutBake = 10 * time.Second

// rollingSet deploys apps/guestbook to every cluster with a ring label, in
// three steps: canary, early, rest.
func rollingSet(repoURL string, canaryBake time.Duration) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: rings, namespace: default}
spec:
  generators:
  - clusters: {selector: {matchExpressions: [{key: ring, operator: Exists}]}}
  template:
    metadata: {name: '{{ .name }}-guestbook'}
    spec:
      source: {repoURL: %s, targetRevision: main, path: apps/guestbook}
      destination: {cluster: '{{ .name }}', namespace: guestbook}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      autoRollback: true
      steps:
      - {name: canary, matchExpressions: [{key: ring, operator: In, values: [canary]}], bakeTime: %s, progressDeadline: 90s}
      - {name: early, matchExpressions: [{key: ring, operator: In, values: [early]}], maxUpdate: 1, bakeTime: %s, progressDeadline: 90s}
      - {name: rest, matchExpressions: [{key: ring, operator: In, values: [rest]}], maxUpdate: 50%%, progressDeadline: 90s}
`, repoURL, canaryBake, rolloutBake)
}

// badGuestbook is a Deployment that can never be scheduled and gives up
// after 5 s: the controller-manager marks it ProgressDeadlineExceeded, so
// kstatus (and the agent) call it Failed: Degraded.
const badGuestbook = `apiVersion: apps/v1
kind: Deployment
metadata: {name: guestbook, labels: {app: guestbook}}
spec:
  replicas: 2
  progressDeadlineSeconds: 5
  selector: {matchLabels: {app: guestbook}}
  template:
    metadata: {labels: {app: guestbook}}
    spec:
      nodeSelector: {flotilla.dev/e2e: no-such-node}
      containers:
      - name: guestbook
        image: registry.example/guestbook
        ports: [{containerPort: 8080}]
`

// pinWatch records, per cluster, when its hub Application was first
// pinned to a commit and first reported Healthy at it.
type pinWatch struct {
	mu              sync.Mutex
	pinned, healthy map[string]time.Time
	// pinnedAt is when the hub wrote the Application's spec (its
	// managedFields time), healthySince when its Healthy condition last
	// changed (both as the apiserver stores them, to the second).
	pinnedAt, healthySince map[string]time.Time
	stop                   chan struct{}
	done                   sync.WaitGroup
}

func watchPins(t *testing.T, f *localfleet.Fleet, rev string) *pinWatch {
	w := &pinWatch{pinned: map[string]time.Time{}, healthy: map[string]time.Time{}, pinnedAt: map[string]time.Time{}, healthySince: map[string]time.Time{}, stop: make(chan struct{})}
	w.done.Go(func() {
		for {
			list := &flotillav1.ApplicationList{}
			if err := f.Hub.Client.List(context.Background(), list, client.InNamespace("default"), client.MatchingLabels{flotillav1.LabelApplicationSet: "rings"}); err == nil {
				now := time.Now()
				w.mu.Lock()
				for _, a := range list.Items {
					c := a.Spec.Destination.Cluster
					if _, ok := w.pinned[c]; !ok && a.Spec.Source.PinnedCommit == rev {
						w.pinned[c] = now
						for _, mf := range a.ManagedFields {
							if mf.Manager == flotillav1.FieldManagerHub && mf.Operation == metav1.ManagedFieldsOperationApply && mf.Time != nil {
								w.pinnedAt[c] = mf.Time.Time
							}
						}
					}
					if _, ok := w.healthy[c]; !ok && a.Status.Sync.Revision == rev && a.Status.Health.Status == flotillav1.HealthHealthy {
						w.healthy[c] = now
						w.healthySince[c] = conditionOf(a.Status.Conditions, flotillav1.ConditionHealthy).LastTransitionTime.Time
					}
				}
				w.mu.Unlock()
			}
			select {
			case <-w.stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	})
	t.Cleanup(w.end)
	return w
}

func (w *pinWatch) end() {
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	w.done.Wait()
}

// stored returns, as the apiserver stored them, the earliest time the hub
// wrote a pin of a ring's clusters and the latest time one of them turned
// Healthy at the commit.
func (w *pinWatch) stored(r string) (firstPinned, lastHealthy time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c, rr := range rings {
		if rr != r {
			continue
		}
		if p, ok := w.pinnedAt[c]; ok && (firstPinned.IsZero() || p.Before(firstPinned)) {
			firstPinned = p
		}
		if h := w.healthySince[c]; h.After(lastHealthy) {
			lastHealthy = h
		}
	}
	return firstPinned, lastHealthy
}

// ring returns the earliest pinned and latest healthy time of a ring's clusters.
func (w *pinWatch) ring(r string) (firstPinned, lastHealthy time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for c, rr := range rings {
		if rr != r {
			continue
		}
		if p, ok := w.pinned[c]; ok && (firstPinned.IsZero() || p.Before(firstPinned)) {
			firstPinned = p
		}
		if h := w.healthy[c]; h.After(lastHealthy) {
			lastHealthy = h
		}
	}
	return firstPinned, lastHealthy
}

// Scenario: a rolling update over 6 clusters in 3 steps. A good commit goes
// canary → early → rest, each step waiting its bake time; a bad commit is
// Degraded on the canary, never reaches early or rest, and is rolled back
// automatically; pause holds a new commit, resume lets it go, promote ends
// a bake early.
func TestRollingUpdate(t *testing.T) {
	names := []string{"canary", "early-1", "early-2", "rest-1", "rest-2", "rest-3"}
	f := fleettest.Start(t, names)
	ctx := context.Background()
	for _, n := range names {
		mustOut(t)(f.Flotilla(ctx, "cluster", "label", n, "ring="+rings[n]))
	}
	repo, rev1, err := f.SampleRepo()
	check(t, err)
	check(t, f.ApplyYAML(ctx, "rings", rollingSet(repo.URL, rolloutBake)))
	eventually(t, 3*time.Minute, "v1 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "rings", 6, rev1) })
	eventually(t, 30*time.Second, "rollout Complete at v1", func() (bool, string) {
		ro := setStatus(t, f, "default", "rings").Rollout
		return ro != nil && ro.Phase == flotillav1.RolloutComplete && ro.StableCommit == rev1, fmt.Sprintf("%+v", ro)
	})

	// A good commit, step by step.
	rev2 := bumpImages(t, repo, []string{"guestbook"}, "v2")
	w := watchPins(t, f, rev2)
	refresh(t, f)
	took := eventually(t, 4*time.Minute, "v2 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "rings", 6, rev2) })
	eventually(t, 30*time.Second, "rollout Complete at v2", func() (bool, string) {
		ro := setStatus(t, f, "default", "rings").Rollout
		return ro != nil && ro.Phase == flotillav1.RolloutComplete && ro.StableCommit == rev2, fmt.Sprintf("%+v", ro)
	})
	w.end()
	canaryPinned, canaryHealthy := w.ring("canary")
	earlyPinned, earlyHealthy := w.ring("early")
	restPinned, _ := w.ring("rest")
	t.Logf("v2: canary pinned +0s Healthy +%s; early pinned +%s Healthy +%s; rest pinned +%s; all Healthy after %s",
		canaryHealthy.Sub(canaryPinned).Round(100*time.Millisecond), earlyPinned.Sub(canaryPinned).Round(100*time.Millisecond),
		earlyHealthy.Sub(canaryPinned).Round(100*time.Millisecond), restPinned.Sub(canaryPinned).Round(100*time.Millisecond), took.Round(time.Second))
	// Asserted on the apiserver's own timestamps (whole seconds, so exact):
	// a step's first pin is written no earlier than its previous step's
	// last Healthy transition plus the bake time.
	_, canaryHealthyAt := w.stored("canary")
	earlyPinnedAt, earlyHealthyAt := w.stored("early")
	restPinnedAt, _ := w.stored("rest")
	if earlyPinnedAt.Before(canaryHealthyAt.Add(rolloutBake)) {
		t.Fatalf("an early cluster was pinned at %s, the canary Healthy at %s: before its %s bake", earlyPinnedAt, canaryHealthyAt, rolloutBake)
	}
	if restPinnedAt.Before(earlyHealthyAt.Add(rolloutBake)) {
		t.Fatalf("a rest cluster was pinned at %s, early Healthy at %s: before its %s bake", restPinnedAt, earlyHealthyAt, rolloutBake)
	}

	// A bad commit: Degraded on the canary, rolled back; early and rest untouched.
	before := map[string]string{}
	for _, n := range names[1:] {
		before[n] = deployment(t, f.Spokes[n], "guestbook", "guestbook").ResourceVersion
	}
	rev3, err := repo.Commit(map[string]string{"apps/guestbook/deployment.yaml": badGuestbook}, "A Deployment that cannot be scheduled")
	check(t, err)
	refresh(t, f)
	eventually(t, 2*time.Minute, "the bad commit rolled back", func() (bool, string) {
		ro := setStatus(t, f, "default", "rings").Rollout
		return ro != nil && ro.TargetCommit == rev3 && ro.Phase == flotillav1.RolloutRolledBack, fmt.Sprintf("%+v", ro)
	})
	ro := setStatus(t, f, "default", "rings").Rollout
	if !strings.Contains(ro.Message, "canary-guestbook (cluster canary) is Degraded") || ro.StableCommit != rev2 {
		t.Fatalf("rollout after the bad commit: %+v", ro)
	}
	back := eventually(t, 2*time.Minute, "the canary Healthy at the stable commit again", func() (bool, string) {
		return allHealthyAt(t, f, "default", "rings", 6, rev2)
	})
	t.Logf("bad commit %s: rolled back; every cluster Healthy at %s %s after the rollback was reported", rev3[:7], rev2[:7], back.Round(100*time.Millisecond))
	for _, n := range names[1:] {
		if rv := deployment(t, f.Spokes[n], "guestbook", "guestbook").ResourceVersion; rv != before[n] {
			t.Fatalf("the Deployment on %s changed (resourceVersion %s → %s): the bad commit reached a later step", n, before[n], rv)
		}
	}
	for n, a := range spokeAppsOf(t, f, names[1:]) {
		if a.Spec.Source.PinnedCommit != rev2 {
			t.Fatalf("the spoke copy on %s was pinned to %.7s", n, a.Spec.Source.PinnedCommit)
		}
	}
	out := mustOut(t)(f.Flotilla(ctx, "rollout", "status", "rings", "-n", "default"))
	if !strings.Contains(out, "RolledBack") || !strings.Contains(out, "canary") {
		t.Fatalf("flotilla rollout status:\n%s", out)
	}
	t.Logf("flotilla rollout status:\n%s", out)

	// Pause holds a new commit; resume lets it go; promote ends a long bake.
	check(t, f.ApplyYAML(ctx, "rings", rollingSet(repo.URL, time.Hour)))
	mustOut(t)(f.Flotilla(ctx, "rollout", "pause", "rings", "-n", "default"))
	good := localfleet.SampleFiles([]string{"guestbook"}, "v4")
	rev4, err := repo.Commit(map[string]string{"apps/guestbook/deployment.yaml": good["apps/guestbook/deployment.yaml"],
		"apps/guestbook/kustomization.yaml": good["apps/guestbook/kustomization.yaml"]}, "Fix the Deployment, v4")
	check(t, err)
	refresh(t, f)
	time.Sleep(5 * time.Second) // what must not happen: a paused rollout starts the new commit
	if st := setStatus(t, f, "default", "rings"); st.Rollout.Phase != flotillav1.RolloutPaused || pinnedTo(t, f, rev4) != 0 {
		t.Fatalf("paused, yet: phase %s, %d Applications pinned to the new commit", st.Rollout.Phase, pinnedTo(t, f, rev4))
	}
	mustOut(t)(f.Flotilla(ctx, "rollout", "resume", "rings", "-n", "default"))
	eventually(t, 2*time.Minute, "the canary Healthy at v4, baking", func() (bool, string) {
		ro := setStatus(t, f, "default", "rings").Rollout
		return ro.TargetCommit == rev4 && ro.Phase == flotillav1.RolloutBaking, fmt.Sprintf("%+v", ro)
	})
	if n := pinnedTo(t, f, rev4); n != 1 {
		t.Fatalf("%d Applications at v4 while the canary bakes (1 h), want 1", n)
	}
	mustOut(t)(f.Flotilla(ctx, "rollout", "promote", "rings", "-n", "default"))
	eventually(t, 30*time.Second, "an early cluster at v4 after promote", func() (bool, string) {
		return pinnedTo(t, f, rev4) >= 2, fmt.Sprintf("%d pinned", pinnedTo(t, f, rev4))
	})
	mustOut(t)(f.Flotilla(ctx, "rollout", "status", "rings", "-n", "default", "--watch", "--timeout", "3m"))
	if ok, msg := allHealthyAt(t, f, "default", "rings", 6, rev4); !ok {
		t.Fatalf("rollout status --watch returned before every cluster was Healthy at v4: %s", msg)
	}
	out = mustOut(t)(f.Flotilla(ctx, "status", "-n", "default"))
	if !strings.Contains(out, "Complete") {
		t.Fatalf("flotilla status does not show the rollout's phase:\n%s", out)
	}
}

// refresh asks the hub to resolve the set's revision again now.
func refresh(t *testing.T, f *localfleet.Fleet) {
	t.Helper()
	set := &flotillav1.ApplicationSet{}
	check(t, f.Hub.Client.Get(context.Background(), client.ObjectKey{Namespace: "default", Name: "rings"}, set))
	patch := client.MergeFrom(set.DeepCopy())
	if set.Annotations == nil {
		set.Annotations = map[string]string{}
	}
	set.Annotations[flotillav1.AnnotationRefresh] = time.Now().Format(time.RFC3339Nano)
	check(t, f.Hub.Client.Patch(context.Background(), set, patch))
}

// pinnedTo counts the set's hub Applications pinned to rev.
func pinnedTo(t *testing.T, f *localfleet.Fleet, rev string) int {
	n := 0
	for _, a := range appsOf(t, f, "default", "rings") {
		if a.Spec.Source.PinnedCommit == rev {
			n++
		}
	}
	return n
}

// spokeAppsOf are the set's spoke copies on the named clusters.
func spokeAppsOf(t *testing.T, f *localfleet.Fleet, clusters []string) map[string]flotillav1.Application {
	out := map[string]flotillav1.Application{}
	for _, c := range clusters {
		for _, a := range spokeApps(t, f.Spokes[c]) {
			out[c] = a
		}
	}
	return out
}
