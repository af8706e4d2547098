package applicationset

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/metrics"
)

const (
	commitS = "5555555555555555555555555555555555555555"
	commitT = "7777777777777777777777777777777777777777"
	commitU = "9999999999999999999999999999999999999999"
)

// sim is a set's fleet as the rollout sees it: the hub's Applications and
// what their agents report.
type sim struct {
	t        *testing.T
	strategy *flotillav1.RollingUpdateStrategy
	status   *flotillav1.RolloutStatus
	existing map[string]*flotillav1.Application
	clusters map[string]map[string]string
	now      time.Time
	paused   bool
	action   string
	last     *rolloutPlan
}

func newSim(t *testing.T, autoRollback bool) *sim {
	two := intstr.FromInt32(1)
	s := &sim{t: t, existing: map[string]*flotillav1.Application{}, now: time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC),
		strategy: &flotillav1.RollingUpdateStrategy{AutoRollback: autoRollback, Steps: []flotillav1.RolloutStep{
			{Name: "canary", MatchExpressions: ring("canary"), BakeTime: &metav1.Duration{Duration: time.Minute}, ProgressDeadline: &metav1.Duration{Duration: 5 * time.Minute}},
			{Name: "early", MatchExpressions: ring("early"), MaxUpdate: &two, BakeTime: &metav1.Duration{Duration: time.Minute}},
			{Name: "rest"},
		}},
		clusters: map[string]map[string]string{
			"c1": {"ring": "canary"}, "e1": {"ring": "early"}, "e2": {"ring": "early"}, "r1": {"ring": "rest"}, "r2": {"ring": "rest"}, "r3": {},
		}}
	return s
}

func ring(v string) []metav1.LabelSelectorRequirement {
	return []metav1.LabelSelectorRequirement{{Key: "ring", Operator: metav1.LabelSelectorOpIn, Values: []string{v}}}
}

// at creates the set's Applications at commit, Healthy.
func (s *sim) at(commit string, clusters ...string) {
	for _, c := range clusters {
		a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: c + "-app", Generation: 1}}
		a.Spec.Destination.Cluster = c
		a.Spec.Source.PinnedCommit = commit
		s.existing[a.Name] = a
		s.report(a.Name, flotillav1.HealthHealthy)
	}
}

// report is the agent's report on the Application's current spec.
func (s *sim) report(name string, h flotillav1.HealthStatusCode) {
	a := s.existing[name]
	a.Status.ObservedGeneration = a.Generation
	a.Status.Sync.Revision = a.Spec.Source.PinnedCommit
	a.Status.Health.Status = h
}

// reconcile plans with the branch at target and writes the desired pins
// (a changed pin is a new generation nobody reported on yet).
func (s *sim) reconcile(target string, clusters ...string) *rolloutPlan {
	if len(clusters) == 0 {
		for c := range s.clusters {
			clusters = append(clusters, c)
		}
	}
	var desired []*flotillav1.Application
	for _, c := range clusters {
		a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: c + "-app"}}
		a.Spec.Destination.Cluster = c
		a.Spec.Source.PinnedCommit = target
		desired = append(desired, a)
	}
	p := planRollout(rolloutInput{strategy: s.strategy, prev: s.status, target: target, paused: s.paused, action: s.action,
		desired: desired, existing: s.existing, clusterLabels: s.clusters, now: s.now})
	s.action = ""
	s.status = &p.status
	for _, d := range desired {
		cur := s.existing[d.Name]
		if cur == nil {
			cur = &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: d.Name}}
			cur.Spec.Destination.Cluster = d.Spec.Destination.Cluster
			s.existing[d.Name] = cur
		}
		if cur.Spec.Source.PinnedCommit != d.Spec.Source.PinnedCommit || cur.Generation == 0 {
			cur.Spec.Source.PinnedCommit = d.Spec.Source.PinnedCommit
			cur.Generation++
		}
	}
	s.last = p
	return p
}

// pins is each cluster's commit, as a compact string: c1=T e1=S …
func (s *sim) pins() map[string]string {
	out := map[string]string{}
	for _, a := range s.existing {
		out[a.Spec.Destination.Cluster] = a.Spec.Source.PinnedCommit[:1]
	}
	return out
}

func (s *sim) want(phase flotillav1.RolloutPhase, step int32, pins map[string]string) {
	s.t.Helper()
	if s.status.Phase != phase || s.status.CurrentStep != step {
		s.t.Fatalf("phase %s step %d, want %s step %d; message: %s", s.status.Phase, s.status.CurrentStep, phase, step, s.status.Message)
	}
	got := s.pins()
	for c, w := range pins {
		if got[c] != w {
			s.t.Fatalf("cluster %s at %s, want %s (all: %v; %s)", c, got[c], w, got, s.status.Message)
		}
	}
}

// healthyAll reports every Application Healthy at its current spec.
func (s *sim) healthyAll() {
	for n := range s.existing {
		s.report(n, flotillav1.HealthHealthy)
	}
}

var allS = map[string]string{"c1": "5", "e1": "5", "e2": "5", "r1": "5", "r2": "5", "r3": "5"}

func TestRolloutStepsInOrder(t *testing.T) {
	s := newSim(t, true)
	s.at(commitS, "c1", "e1", "e2", "r1", "r2", "r3")
	s.reconcile(commitS)
	s.want(flotillav1.RolloutComplete, 0, allS)

	p := s.reconcile(commitT)
	s.want(flotillav1.RolloutProgressing, 0, map[string]string{"c1": "7", "e1": "5", "e2": "5", "r1": "5", "r3": "5"})
	if len(p.events) != 1 || p.events[0].reason != flotillav1.ReasonRolloutStarted {
		t.Fatalf("events %+v", p.events)
	}
	// Not reported yet: the old report (at S, older generation) is not Healthy at T.
	s.now = s.now.Add(10 * time.Second)
	s.reconcile(commitT)
	s.want(flotillav1.RolloutProgressing, 0, map[string]string{"c1": "7", "e1": "5"})

	s.healthyAll()
	s.reconcile(commitT)
	s.want(flotillav1.RolloutBaking, 0, map[string]string{"c1": "7", "e1": "5", "e2": "5"})
	if s.last.requeue != time.Minute {
		t.Fatalf("requeue %s, want the bake time", s.last.requeue)
	}
	s.now = s.now.Add(59 * time.Second)
	s.reconcile(commitT)
	s.want(flotillav1.RolloutBaking, 0, map[string]string{"e1": "5", "e2": "5"})

	s.now = s.now.Add(time.Second)
	p = s.reconcile(commitT)
	// maxUpdate 1: one of the two early clusters moves.
	s.want(flotillav1.RolloutProgressing, 1, map[string]string{"c1": "7", "r1": "5"})
	if got := s.status.Steps[1]; got.Applications != 2 || got.Updated != 0 {
		t.Fatalf("step early counts %+v (counted before the move)", got)
	}
	if n := countPins(s.pins(), "7"); n != 2 {
		t.Fatalf("%d clusters at T, want canary and one early: %v", n, s.pins())
	}
	if len(p.stepPassed) != 1 || p.stepPassed[0] != 70*time.Second {
		t.Fatalf("step durations %v", p.stepPassed)
	}
	s.healthyAll()
	s.reconcile(commitT)
	s.want(flotillav1.RolloutProgressing, 1, map[string]string{"e1": "7", "e2": "7", "r1": "5"})
	s.healthyAll()
	s.reconcile(commitT)
	s.want(flotillav1.RolloutBaking, 1, nil)
	s.now = s.now.Add(time.Minute)
	s.reconcile(commitT)
	// rest: no bake, r3 has no ring label and moves with the last step.
	s.want(flotillav1.RolloutProgressing, 2, map[string]string{"r1": "7", "r2": "7", "r3": "7"})
	s.healthyAll()
	p = s.reconcile(commitT)
	s.want(flotillav1.RolloutComplete, 2, map[string]string{"c1": "7", "e1": "7", "r1": "7", "r3": "7"})
	if s.status.StableCommit != commitT || p.events[len(p.events)-1].reason != flotillav1.ReasonRolloutComplete {
		t.Fatalf("stable %s, events %+v", s.status.StableCommit, p.events)
	}
}

func countPins(pins map[string]string, c string) int {
	n := 0
	for _, v := range pins {
		if v == c {
			n++
		}
	}
	return n
}

func TestRolloutDegradedStepRollsBack(t *testing.T) {
	s := newSim(t, true)
	s.at(commitS, "c1", "e1", "e2", "r1", "r2", "r3")
	s.reconcile(commitS)
	s.reconcile(commitT)
	s.report("c1-app", flotillav1.HealthDegraded)
	s.now = s.now.Add(30 * time.Second)
	p := s.reconcile(commitT)
	s.want(flotillav1.RolloutRolledBack, 0, allS)
	if !p.rolledBack || !strings.Contains(s.status.Message, "c1-app (cluster c1) is Degraded") {
		t.Fatalf("rolledBack %v, message %q", p.rolledBack, s.status.Message)
	}
	// The branch still names the bad commit: it is not rolled out again,
	// neither now nor after a pause and resume.
	s.reconcile(commitT)
	s.want(flotillav1.RolloutRolledBack, 0, allS)
	s.paused = true
	s.reconcile(commitT)
	s.want(flotillav1.RolloutPaused, 0, allS)
	s.paused = false
	s.reconcile(commitT)
	s.want(flotillav1.RolloutRolledBack, 0, allS)
	s.now = s.now.Add(20 * time.Second)
	s.healthyAll()
	p = s.reconcile(commitT)
	if p.rollbackDone != 20*time.Second || s.status.FailureTime != nil {
		t.Fatalf("rollback took %s (want 20s), failure time %v", p.rollbackDone, s.status.FailureTime)
	}
	// A newer commit starts again from the first step.
	s.reconcile(commitU)
	s.want(flotillav1.RolloutProgressing, 0, map[string]string{"c1": "9", "e1": "5", "r1": "5"})
}

func TestRolloutHaltsWithoutAutoRollback(t *testing.T) {
	s := newSim(t, false)
	s.at(commitS, "c1", "e1", "e2", "r1", "r2", "r3")
	s.reconcile(commitS)
	s.reconcile(commitT)
	// Past the progress deadline without a report: failed, halted, nothing moves.
	s.now = s.now.Add(5*time.Minute + time.Second)
	s.reconcile(commitT)
	s.want(flotillav1.RolloutHalted, 0, map[string]string{"c1": "7", "e1": "5", "r1": "5"})
	if !strings.Contains(s.status.Message, "progressDeadline 5m0s") || !strings.Contains(s.status.Message, "c1-app") {
		t.Fatalf("message %q", s.status.Message)
	}
	s.healthyAll()
	s.reconcile(commitT)
	s.want(flotillav1.RolloutHalted, 0, map[string]string{"e1": "5"})
	// A person promotes: the next step starts.
	s.action = "promote"
	s.reconcile(commitT)
	s.want(flotillav1.RolloutProgressing, 1, map[string]string{"c1": "7"})
	// ...and rolls back: everything returns to S.
	s.action = "rollback"
	s.reconcile(commitT)
	s.want(flotillav1.RolloutRolledBack, 1, allS)
}

func TestRolloutPauseAndResume(t *testing.T) {
	s := newSim(t, true)
	s.at(commitS, "c1", "e1", "e2", "r1", "r2", "r3")
	s.reconcile(commitS)
	s.reconcile(commitT)
	s.healthyAll()
	s.paused = true
	s.now = s.now.Add(time.Hour)
	s.reconcile(commitT)
	s.want(flotillav1.RolloutPaused, 0, map[string]string{"c1": "7", "e1": "5", "e2": "5"})
	// A new commit waits while paused.
	s.reconcile(commitU)
	s.want(flotillav1.RolloutPaused, 0, map[string]string{"c1": "7", "e1": "5"})
	s.paused = false
	s.reconcile(commitT)
	// Resumed: the bake starts again (an hour paused is not baking).
	s.want(flotillav1.RolloutBaking, 0, map[string]string{"e1": "5"})
	s.action = "promote"
	s.reconcile(commitT)
	s.want(flotillav1.RolloutProgressing, 1, map[string]string{"c1": "7"})
}

func TestRolloutJoinersAndUnseenClusters(t *testing.T) {
	s := newSim(t, true)
	s.at(commitS, "c1", "e1", "r1")
	s.reconcile(commitS, "c1", "e1", "r1")
	s.reconcile(commitT, "c1", "e1", "r1")
	s.healthyAll()
	s.now = s.now.Add(time.Minute)
	s.reconcile(commitT, "c1", "e1", "r1") // baking
	s.now = s.now.Add(time.Minute)
	// e2 joins the step in progress, r2 a later step: both start at stable.
	s.reconcile(commitT, "c1", "e1", "e2", "r1", "r2")
	s.want(flotillav1.RolloutProgressing, 1, map[string]string{"c1": "7", "e1": "7", "e2": "5", "r2": "5"})
	// e2 is updated with its step once e1 is Healthy (maxUpdate 1).
	s.healthyAll()
	s.reconcile(commitT, "c1", "e1", "e2", "r1", "r2")
	s.want(flotillav1.RolloutProgressing, 1, map[string]string{"e2": "7", "r2": "5"})
	// e2's cluster goes dark: neither Healthy nor blocking.
	e2 := s.existing["e2-app"]
	e2.Status.Health.Status = flotillav1.HealthUnknown
	e2.Status.Conditions = []metav1.Condition{{Type: flotillav1.ConditionHealthy, Status: metav1.ConditionUnknown, Reason: flotillav1.ReasonClusterUnreachable}}
	s.reconcile(commitT, "c1", "e1", "e2", "r1", "r2")
	s.want(flotillav1.RolloutBaking, 1, nil)
	if got := s.status.Steps[1]; got.Unknown != 1 || got.Healthy != 1 {
		t.Fatalf("step early %+v", got)
	}
	s.now = s.now.Add(time.Minute)
	s.reconcile(commitT, "c1", "e1", "e2", "r1", "r2")
	s.want(flotillav1.RolloutProgressing, 2, map[string]string{"r1": "7", "r2": "7"})
}

func TestRolloutNewCommitRestarts(t *testing.T) {
	s := newSim(t, true)
	s.at(commitS, "c1", "e1", "e2", "r1")
	s.reconcile(commitS)
	s.reconcile(commitT)
	s.healthyAll()
	s.reconcile(commitT)
	s.now = s.now.Add(time.Minute)
	s.reconcile(commitT) // early starts: e1 at T
	s.reconcile(commitU)
	// Back to the first step with U; early keeps what it runs until its step.
	s.want(flotillav1.RolloutProgressing, 0, map[string]string{"c1": "9", "r1": "5"})
	if got := s.pins(); got["e1"]+got["e2"] != "75" && got["e1"]+got["e2"] != "57" {
		t.Fatalf("early clusters moved: %v", got)
	}
	// A rollback to a named commit makes it stable.
	s.action = "rollback:x"
	p := planRollout(rolloutInput{strategy: s.strategy, prev: s.status, target: commitU, action: "rollback:x", rollbackTo: commitT,
		existing: s.existing, clusterLabels: s.clusters, now: s.now})
	if p.status.StableCommit != commitT || p.status.Phase != flotillav1.RolloutRolledBack {
		t.Fatalf("after rollback to T: %+v", p.status)
	}
}

func TestRolloutFirstExpansion(t *testing.T) {
	s := newSim(t, true)
	s.reconcile(commitT)
	s.want(flotillav1.RolloutComplete, 0, map[string]string{"c1": "7", "r3": "7"})
}

func TestMaxUpdate(t *testing.T) {
	for _, tc := range []struct {
		v    intstr.IntOrString
		n, w int
	}{{intstr.FromInt32(2), 5, 2}, {intstr.FromString("25%"), 5, 2}, {intstr.FromString("10%"), 3, 1}, {intstr.FromString("100%"), 4, 4}} {
		if got := maxUpdate(flotillav1.RolloutStep{MaxUpdate: &tc.v}, tc.n); got != tc.w {
			t.Errorf("maxUpdate %s of %d = %d, want %d", tc.v.String(), tc.n, got, tc.w)
		}
	}
}

func TestRolloutMetrics(t *testing.T) {
	r := &Reconciler{}
	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "metrics-set"}}
	r.rolloutDone(set, &rolloutPlan{status: flotillav1.RolloutStatus{Phase: flotillav1.RolloutRolledBack}, stepPassed: []time.Duration{3 * time.Second},
		rolledBack: true, rollbackDone: 7 * time.Second})
	if v := testutil.ToFloat64(metrics.RolloutPhase.WithLabelValues("ns", "metrics-set", "RolledBack")); v != 1 {
		t.Fatalf("phase RolledBack = %v", v)
	}
	if v := testutil.ToFloat64(metrics.RolloutPhase.WithLabelValues("ns", "metrics-set", "Complete")); v != 0 {
		t.Fatalf("phase Complete = %v", v)
	}
	if v := testutil.ToFloat64(metrics.Rollbacks.WithLabelValues("ns", "metrics-set")); v != 1 {
		t.Fatalf("rollbacks = %v", v)
	}
	if n := testutil.CollectAndCount(metrics.RollbackDuration); n != 1 {
		t.Fatalf("%d rollback duration series", n)
	}
	forgetRollout(types.NamespacedName{Namespace: "ns", Name: "metrics-set"})
	for _, c := range []prometheus.Collector{metrics.RolloutPhase, metrics.RolloutStepDuration, metrics.Rollbacks, metrics.RollbackDuration} {
		if n := testutil.CollectAndCount(c); n != 0 {
			t.Fatalf("%d series left after the set is gone", n)
		}
	}
}

// TestRolloutReadsItsOwnWrites: a reconcile woken before the cache has
// seen the last status write (here: the very same stale set, still
// carrying the promote it asked for) plans from what was written last and
// does not promote twice.
func TestRolloutReadsItsOwnWrites(t *testing.T) {
	scheme := runtime.NewScheme()
	if err := flotillav1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(scheme).WithObjects(
		&flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "c1", Labels: map[string]string{"ring": "canary"}}},
		&flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "e1", Labels: map[string]string{"ring": "early"}}},
		&flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "r1", Labels: map[string]string{"ring": "rest"}}},
	).Build()
	r := &Reconciler{Client: c, rolling: map[types.NamespacedName]bool{}, rollouts: map[types.NamespacedName]*rolloutMemory{}}
	s := newSim(t, true)
	s.at(commitS, "c1", "e1", "r1")
	s.reconcile(commitS, "c1", "e1", "r1")
	s.reconcile(commitT, "c1", "e1", "r1")
	s.healthyAll()
	s.reconcile(commitT, "c1", "e1", "r1") // baking the canary
	stale := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "set", UID: "u1", ResourceVersion: "7",
		Annotations: map[string]string{flotillav1.AnnotationRolloutAction: "promote@1"}},
		Spec:   flotillav1.ApplicationSetSpec{Strategy: &flotillav1.ApplicationSetStrategy{Type: flotillav1.StrategyRollingUpdate, RollingUpdate: s.strategy}},
		Status: flotillav1.ApplicationSetStatus{Rollout: s.status.DeepCopy()}}
	desired := func() []*flotillav1.Application {
		var out []*flotillav1.Application
		for _, c := range []string{"c1", "e1", "r1"} {
			a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: c + "-app"}}
			a.Spec.Destination.Cluster = c
			out = append(out, a)
		}
		return out
	}
	for i := range 2 {
		set := stale.DeepCopy()
		p, err := r.roll(t.Context(), set, desired(), s.existing, []string{commitT})
		if err != nil {
			t.Fatal(err)
		}
		if p.status.CurrentStep != 1 || p.status.Phase != flotillav1.RolloutProgressing {
			t.Fatalf("reconcile %d of the same stale set: step %d %s, want step 1 Progressing once: %s", i+1, p.status.CurrentStep, p.status.Phase, p.status.Message)
		}
		r.rememberRollout(set, p)
	}
	// Once a version without the annotation is seen, the same value is a new request.
	fresh := stale.DeepCopy()
	fresh.Annotations = nil
	p, err := r.roll(t.Context(), fresh, desired(), s.existing, []string{commitT})
	if err != nil || p.status.CurrentStep != 1 || p.status.Phase != flotillav1.RolloutProgressing {
		t.Fatalf("the stale status without the annotation: %v, step %d %s (the written state is step 1)", err, p.status.CurrentStep, p.status.Phase)
	}
	r.rememberRollout(fresh, p)
	again := stale.DeepCopy()
	if p, err = r.roll(t.Context(), again, desired(), s.existing, []string{commitT}); err != nil || p.status.CurrentStep != 2 {
		t.Fatalf("a new promote after the first was seen handled: %v, step %d", err, p.status.CurrentStep)
	}
}
