package applicationset

import (
	"fmt"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// Rolling updates. The hub pins every Git-sourced Application to a commit
// (revisions.go); a RollingUpdate strategy decides, per Application, whether
// that is the target commit (what the branch resolved to) or the stable one
// (the last commit fully rolled out and Healthy). The state lives in the
// set's status.rollout, so a restarted hub carries on where it was.
//
// Choices where the issue left them open:
//   - An Application joining mid-rollout starts at the stable commit; it is
//     updated with its step if that step is in progress, or when the rollout
//     completes if its step has passed.
//   - An Application whose cluster or agent cannot be seen counts neither
//     as Healthy nor as failed (Unknown): a step passes when every visible
//     Application of it is Healthy at the target; a step with none visible
//     cannot pass and fails at its progressDeadline.
//   - A newer commit mid-rollout restarts from the first step; Applications
//     of later steps keep the commit they run until their step comes.
//   - A failure with autoRollback sends every Application of the set back to
//     the stable commit (the steps before the failed one ran the bad commit
//     too), at once, not step by step.
//   - A paused rollout moves nothing: no step starts or ends, deadlines and
//     bake times start again on resume, and a new commit waits.

// Default step timings.
const (
	DefaultProgressDeadline = 10 * time.Minute
)

// rolloutEvent is an Event the rollout's progress asks for.
type rolloutEvent struct{ kind, reason, message string }

// rolloutPlan is one reconcile's decision for a rolling set.
type rolloutPlan struct {
	status  flotillav1.RolloutStatus
	events  []rolloutEvent
	requeue time.Duration
	// stepPassed are the durations of the steps that ended now (metrics).
	stepPassed []time.Duration
	// rolledBack: a rollback started now; rollbackDone: the one in
	// progress finished now, after this long.
	rolledBack   bool
	rollbackDone time.Duration
	now          time.Time
	// action is the set's rollout action annotation this plan handled ("": none).
	action string
}

// rolloutInput is what planRollout reads.
type rolloutInput struct {
	strategy *flotillav1.RollingUpdateStrategy
	prev     *flotillav1.RolloutStatus
	// target is the commit the set's revision resolved to now ("" when it
	// could not be resolved: the rollout goes on towards its last target).
	target string
	// paused: the set carries AnnotationRolloutPaused.
	paused bool
	// action is the set's AnnotationRolloutAction ("" for none);
	// rollbackTo is the commit a "rollback:<ref>" resolved to.
	action, rollbackTo string
	desired            []*flotillav1.Application
	existing           map[string]*flotillav1.Application
	// clusterLabels are the MemberClusters' labels (absent: unknown
	// cluster, which moves with the last step).
	clusterLabels map[string]map[string]string
	now           time.Time
}

// member is one desired Application in the rollout.
type member struct {
	app  *flotillav1.Application
	cur  *flotillav1.Application // nil: new
	step int
}

// planRollout decides the rollout's next state and sets each desired
// Git-sourced Application's pinnedCommit accordingly.
func planRollout(in rolloutInput) *rolloutPlan {
	p := &rolloutPlan{now: in.now}
	if in.prev != nil {
		p.status = *in.prev.DeepCopy()
	}
	st := &p.status
	steps := in.strategy.Steps
	members := assignSteps(in)
	if st.StableCommit == "" {
		st.StableCommit = majorityPin(in.existing)
		if st.StableCommit == "" {
			st.StableCommit = in.target
		}
		st.TargetCommit, st.Phase, st.CurrentStep = st.StableCommit, flotillav1.RolloutComplete, 0
	}
	if st.StableCommit == "" { // nothing resolved yet: nothing to roll
		st.Message = "waiting for the set's revision to resolve to a commit"
		return p
	}
	p.handleAction(in)
	p.pause(in)
	if in.target != "" && in.target != st.TargetCommit && !in.paused {
		p.start(in.target)
	}
	for st.Phase == flotillav1.RolloutProgressing || st.Phase == flotillav1.RolloutBaking {
		if !p.evaluate(in, members) {
			break
		}
	}
	p.count(in, members)
	p.rollbackProgress(in, members)
	assign(st, in.strategy, members)
	if int(st.CurrentStep) >= len(steps) {
		st.CurrentStep = int32(len(steps) - 1)
	}
	return p
}

// assignSteps places each desired Git-sourced Application in its step.
func assignSteps(in rolloutInput) []member {
	steps := in.strategy.Steps
	selectors := make([]labels.Selector, len(steps))
	for i, s := range steps {
		sel, err := metav1.LabelSelectorAsSelector(&metav1.LabelSelector{MatchExpressions: s.MatchExpressions})
		if err != nil {
			sel = labels.Nothing()
		}
		selectors[i] = sel
	}
	var out []member
	for _, a := range in.desired {
		if a.Spec.Source.Chart != "" {
			continue // charts are not pinned by the hub
		}
		m := member{app: a, cur: in.existing[a.Name], step: len(steps) - 1}
		if lbls, ok := in.clusterLabels[a.Spec.Destination.Cluster]; ok {
			for i, sel := range selectors {
				if sel.Matches(labels.Set(lbls)) {
					m.step = i
					break
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// majorityPin is the commit most existing Applications are pinned to.
func majorityPin(existing map[string]*flotillav1.Application) string {
	n := map[string]int{}
	for _, a := range existing {
		if c := a.Spec.Source.PinnedCommit; c != "" {
			n[c]++
		}
	}
	best := ""
	for c, k := range n {
		if k > n[best] || (k == n[best] && c < best) {
			best = c
		}
	}
	return best
}

// start begins rolling out target from the first step.
func (p *rolloutPlan) start(target string) {
	st := &p.status
	st.TargetCommit, st.PausedFrom = target, ""
	st.CurrentStep, st.BakeStartTime, st.FailureTime = 0, nil, nil
	st.StepStartTime = ptrTime(p.now)
	if target == st.StableCommit {
		st.Phase = flotillav1.RolloutComplete
		st.Message = "the target is the stable commit " + short(target)
		return
	}
	st.Phase = flotillav1.RolloutProgressing
	p.event(flotillav1.ReasonRolloutStarted, "rolling out %s (stable %s) from the first step", short(target), short(st.StableCommit))
}

// handleAction carries out a person's flotilla rollout command.
func (p *rolloutPlan) handleAction(in rolloutInput) {
	st := &p.status
	switch {
	case in.action == "":
	case in.action == "abort":
		if st.Phase == flotillav1.RolloutProgressing || st.Phase == flotillav1.RolloutBaking || st.Phase == flotillav1.RolloutPaused {
			st.Phase, st.BakeStartTime = flotillav1.RolloutHalted, nil
			st.Message = fmt.Sprintf("aborted at step %s: nothing moves; flotilla rollout promote|rollback to go on", stepName(in.strategy, int(st.CurrentStep)))
			p.event(flotillav1.ReasonRolloutAction, "%s", st.Message)
		}
	case in.action == "promote":
		if st.Phase == flotillav1.RolloutProgressing || st.Phase == flotillav1.RolloutBaking || st.Phase == flotillav1.RolloutHalted {
			p.event(flotillav1.ReasonRolloutAction, "step %s promoted by a person", stepName(in.strategy, int(st.CurrentStep)))
			st.Phase = flotillav1.RolloutProgressing
			p.nextStep(in)
		}
	case in.action == "rollback" || strings.HasPrefix(in.action, "rollback:"):
		to := st.StableCommit
		if in.rollbackTo != "" {
			to = in.rollbackTo
		}
		if to == st.TargetCommit && st.Phase == flotillav1.RolloutComplete {
			p.event(flotillav1.ReasonRolloutAction, "nothing to roll back: every cluster runs %s already", short(to))
			return
		}
		st.StableCommit, st.Phase, st.BakeStartTime = to, flotillav1.RolloutRolledBack, nil
		st.FailureTime = failureTime(p.now)
		if st.TargetCommit == to {
			st.Phase = flotillav1.RolloutComplete
		}
		st.Message = fmt.Sprintf("rolled back to %s by a person; %s will not be rolled out again, a newer commit will", short(to), short(st.TargetCommit))
		p.rolledBack = true
		p.event(flotillav1.ReasonRolloutRolledBack, "%s", st.Message)
	}
}

// pause freezes the rollout while the set is paused (phase Paused, the
// phase it had kept in pausedFrom) and, on resume, restores that phase,
// restarting the step's clocks if it was moving.
func (p *rolloutPlan) pause(in rolloutInput) {
	st := &p.status
	switch {
	case in.paused && st.Phase != flotillav1.RolloutPaused:
		st.PausedFrom, st.Phase, st.BakeStartTime = st.Phase, flotillav1.RolloutPaused, nil
		st.Message = fmt.Sprintf("paused at step %s: nothing moves, and a new commit waits, until flotilla rollout resume", stepName(in.strategy, int(st.CurrentStep)))
	case !in.paused && st.Phase == flotillav1.RolloutPaused:
		st.Phase, st.PausedFrom = st.PausedFrom, ""
		switch st.Phase {
		case flotillav1.RolloutHalted, flotillav1.RolloutRolledBack, flotillav1.RolloutComplete:
		default:
			st.Phase = flotillav1.RolloutProgressing
			st.StepStartTime, st.BakeStartTime = ptrTime(in.now), nil
		}
	}
}

// stepCounts tallies one step's members against the target.
type stepCounts struct {
	apps, updated, healthy, failed, unknown int
	// waiting names a few Applications not Healthy at the target yet; failed names the first Degraded one.
	waiting   []string
	firstFail string
}

func (p *rolloutPlan) countStep(in rolloutInput, members []member, step int) stepCounts {
	var c stepCounts
	target := p.status.TargetCommit
	for _, m := range members {
		if m.step != step {
			continue
		}
		c.apps++
		at := m.cur != nil && m.cur.Spec.Source.PinnedCommit == target
		if at {
			c.updated++
		}
		switch {
		case at && healthyAt(m.cur, target):
			c.healthy++
		case at && degradedAt(m.cur, target):
			c.failed++
			if c.firstFail == "" {
				c.firstFail = fmt.Sprintf("%s (cluster %s) is Degraded at %s: %s", m.app.Name, m.app.Spec.Destination.Cluster, short(target), m.cur.Status.Health.Message)
			}
		case m.cur != nil && unseen(m.cur):
			c.unknown++
		default:
			if len(c.waiting) < 3 {
				c.waiting = append(c.waiting, m.app.Name)
			}
		}
	}
	return c
}

// evaluate moves the current step on (passed, failed, baking) and reports
// whether the next step should be evaluated at once.
func (p *rolloutPlan) evaluate(in rolloutInput, members []member) bool {
	st := &p.status
	k := int(st.CurrentStep)
	step := in.strategy.Steps[k]
	c := p.countStep(in, members, k)
	name := stepName(in.strategy, k)
	if st.StepStartTime == nil {
		st.StepStartTime = ptrTime(in.now)
	}
	if c.failed > 0 {
		p.fail(in, fmt.Sprintf("step %s failed: %s", name, c.firstFail))
		return false
	}
	visible := c.apps - c.unknown
	if c.apps == 0 || (visible > 0 && c.healthy == visible) {
		if c.apps > 0 && st.BakeStartTime == nil {
			st.BakeStartTime = ptrTime(in.now)
		}
		bake := durationOr(step.BakeTime, 0)
		baked := time.Duration(0)
		if st.BakeStartTime != nil {
			baked = in.now.Sub(st.BakeStartTime.Time)
		}
		if c.apps == 0 || baked >= bake {
			p.nextStep(in)
			return st.Phase == flotillav1.RolloutProgressing
		}
		st.Phase = flotillav1.RolloutBaking
		st.Message = fmt.Sprintf("step %s: %d of %d Healthy at %s, baking %s until %s", name, c.healthy, c.apps, short(st.TargetCommit), bake, st.BakeStartTime.Add(bake).UTC().Format(time.TimeOnly))
		p.wake(bake - baked)
		return false
	}
	if st.BakeStartTime != nil { // was Healthy, is no longer: the bake starts again, with a new deadline
		st.BakeStartTime, st.StepStartTime = nil, ptrTime(in.now)
	}
	st.Phase = flotillav1.RolloutProgressing
	deadline := durationOr(step.ProgressDeadline, DefaultProgressDeadline)
	left := deadline - in.now.Sub(st.StepStartTime.Time)
	if left <= 0 {
		why := fmt.Sprintf("%d of %d Healthy at %s", c.healthy, c.apps, short(st.TargetCommit))
		if len(c.waiting) > 0 {
			why += "; not Healthy: " + strings.Join(c.waiting, ", ")
		}
		if c.unknown > 0 {
			why += fmt.Sprintf("; %d cannot be seen (cluster or agent unavailable)", c.unknown)
		}
		p.fail(in, fmt.Sprintf("step %s failed: not Healthy within its progressDeadline %s (%s)", name, deadline, why))
		return false
	}
	st.Message = fmt.Sprintf("step %s: %d of %d Healthy at %s (%d updated", name, c.healthy, c.apps, short(st.TargetCommit), c.updated)
	if c.unknown > 0 {
		st.Message += fmt.Sprintf(", %d cannot be seen", c.unknown)
	}
	st.Message += fmt.Sprintf("); progressDeadline %s at %s", deadline, st.StepStartTime.Add(deadline).UTC().Format(time.TimeOnly))
	p.wake(left)
	return false
}

// nextStep ends the current step; after the last, the rollout is complete.
func (p *rolloutPlan) nextStep(in rolloutInput) {
	st := &p.status
	if st.StepStartTime != nil {
		p.stepPassed = append(p.stepPassed, in.now.Sub(st.StepStartTime.Time))
	}
	name := stepName(in.strategy, int(st.CurrentStep))
	st.CurrentStep++
	st.StepStartTime, st.BakeStartTime = ptrTime(in.now), nil
	if int(st.CurrentStep) >= len(in.strategy.Steps) {
		st.CurrentStep = int32(len(in.strategy.Steps) - 1)
		st.Phase, st.StableCommit = flotillav1.RolloutComplete, st.TargetCommit
		st.Message = fmt.Sprintf("%s runs on every cluster and is the stable commit", short(st.TargetCommit))
		p.event(flotillav1.ReasonRolloutComplete, "%s", st.Message)
		return
	}
	st.Phase = flotillav1.RolloutProgressing
	p.event(flotillav1.ReasonRolloutStepPassed, "step %s passed; step %s starts with %s", name, stepName(in.strategy, int(st.CurrentStep)), short(st.TargetCommit))
}

// fail halts the rollout or, with autoRollback, rolls it back.
func (p *rolloutPlan) fail(in rolloutInput, why string) {
	st := &p.status
	st.FailureTime, st.BakeStartTime = failureTime(in.now), nil
	if in.strategy.AutoRollback {
		st.Phase = flotillav1.RolloutRolledBack
		st.Message = why + fmt.Sprintf("; rolled back to the stable commit %s; %s will not be rolled out again, a newer commit will", short(st.StableCommit), short(st.TargetCommit))
		p.rolledBack = true
		p.eventKind("Warning", flotillav1.ReasonRolloutRolledBack, "%s", st.Message)
		return
	}
	st.Phase = flotillav1.RolloutHalted
	st.Message = why + "; halted: nothing moves until flotilla rollout rollback (to the stable commit " + short(st.StableCommit) + ") or promote"
	p.eventKind("Warning", flotillav1.ReasonRolloutFailed, "%s", st.Message)
}

// count writes each step's counts into the status.
func (p *rolloutPlan) count(in rolloutInput, members []member) {
	st := &p.status
	st.Steps = st.Steps[:0]
	for i := range in.strategy.Steps {
		c := p.countStep(in, members, i)
		name := in.strategy.Steps[i].Name
		if name == "" {
			name = fmt.Sprintf("step-%d", i+1)
		}
		st.Steps = append(st.Steps, flotillav1.RolloutStepStatus{Name: name, Applications: int32(c.apps),
			Updated: int32(c.updated), Healthy: int32(c.healthy), Failed: int32(c.failed), Unknown: int32(c.unknown)})
	}
}

// rollbackProgress reports the end of a rollback: every visible
// Application Healthy at the stable commit again.
func (p *rolloutPlan) rollbackProgress(in rolloutInput, members []member) {
	st := &p.status
	if st.FailureTime == nil || (st.Phase != flotillav1.RolloutRolledBack && st.Phase != flotillav1.RolloutComplete) {
		return
	}
	for _, m := range members {
		if m.cur == nil || unseen(m.cur) {
			continue
		}
		if m.cur.Spec.Source.PinnedCommit != st.StableCommit || !healthyAt(m.cur, st.StableCommit) {
			p.wake(time.Minute) // status changes wake the set sooner
			return
		}
	}
	p.rollbackDone = in.now.Sub(st.FailureTime.Time)
	st.FailureTime = nil
	if st.Phase == flotillav1.RolloutRolledBack {
		st.Message += fmt.Sprintf("; every cluster is Healthy at %s again (%s after the failure)", short(st.StableCommit), p.rollbackDone.Round(time.Second))
	}
}

// assign pins each member per the rollout's phase.
func assign(st *flotillav1.RolloutStatus, strategy *flotillav1.RollingUpdateStrategy, members []member) {
	// The current step moves at most maxUpdate Applications at a time: those
	// at the target but not Healthy there yet hold a slot.
	k, budget := int(st.CurrentStep), 0
	if k < len(strategy.Steps) {
		n := 0
		for _, m := range members {
			if m.step != k {
				continue
			}
			n++
			if m.cur != nil && m.cur.Spec.Source.PinnedCommit == st.TargetCommit && !healthyAt(m.cur, st.TargetCommit) {
				budget--
			}
		}
		budget += maxUpdate(strategy.Steps[k], n)
	}
	for _, m := range members {
		keep := st.StableCommit
		if m.cur != nil && m.cur.Spec.Source.PinnedCommit != "" {
			keep = m.cur.Spec.Source.PinnedCommit
		}
		pin := keep
		switch st.Phase {
		case flotillav1.RolloutComplete:
			pin = st.TargetCommit
		case flotillav1.RolloutRolledBack:
			pin = st.StableCommit
		case flotillav1.RolloutProgressing, flotillav1.RolloutBaking:
			switch {
			case m.cur == nil && m.step != k:
				pin = st.StableCommit
			case m.step < k:
				pin = st.TargetCommit
			case m.step == k && keep != st.TargetCommit:
				if budget > 0 {
					budget--
					pin = st.TargetCommit
				}
			}
		default: // Paused, Halted: nothing moves
			if m.cur == nil {
				pin = st.StableCommit
			}
		}
		m.app.Spec.Source.PinnedCommit = pin
	}
}

// healthyAt: the agent reported the Application Healthy at commit, for
// the hub's current spec (the hub marks a report for an older spec
// AwaitingAgent, never Healthy).
func healthyAt(a *flotillav1.Application, commit string) bool {
	return a.Status.ObservedGeneration == a.Generation && a.Status.Sync.Revision == commit && a.Status.Health.Status == flotillav1.HealthHealthy
}

func degradedAt(a *flotillav1.Application, commit string) bool {
	return a.Status.ObservedGeneration == a.Generation && a.Status.Sync.Revision == commit && a.Status.Health.Status == flotillav1.HealthDegraded
}

// unseen: the Application's cluster or agent cannot be seen.
func unseen(a *flotillav1.Application) bool {
	for _, t := range []string{flotillav1.ConditionHealthy, flotillav1.ConditionDelivered} {
		if c := apimeta.FindStatusCondition(a.Status.Conditions, t); c != nil && c.Status != metav1.ConditionTrue {
			switch c.Reason {
			case flotillav1.ReasonClusterUnreachable, flotillav1.ReasonAgentUnavailable, flotillav1.ReasonClusterPaused, flotillav1.ReasonSpokeUnreadable, flotillav1.ReasonClusterNotFound:
				return true
			}
		}
	}
	return false
}

// maxUpdate is how many of a step's n Applications may move at a time.
func maxUpdate(step flotillav1.RolloutStep, n int) int {
	if step.MaxUpdate == nil || n == 0 {
		return n
	}
	v, err := intstr.GetScaledValueFromIntOrPercent(step.MaxUpdate, n, true)
	if err != nil || v < 1 {
		return 1
	}
	return v
}

func stepName(s *flotillav1.RollingUpdateStrategy, i int) string {
	n := fmt.Sprintf("%d/%d", i+1, len(s.Steps))
	if i >= 0 && i < len(s.Steps) && s.Steps[i].Name != "" {
		n += " (" + s.Steps[i].Name + ")"
	}
	return n
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d == nil {
		return def
	}
	return d.Duration
}

func short(commit string) string {
	if len(commit) > 7 {
		return commit[:7]
	}
	return commit
}

// ptrTime is t rounded up to the second, as status stores it: a bake or a
// deadline counted from it is never shorter than asked.
func ptrTime(t time.Time) *metav1.Time {
	r := t.Truncate(time.Second)
	if r.Before(t) {
		r = r.Add(time.Second)
	}
	mt := metav1.NewTime(r)
	return &mt
}

// failureTime is t rounded down to the second: a rollback's measured
// time is never shorter than it took.
func failureTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t.Truncate(time.Second))
	return &mt
}

func (p *rolloutPlan) wake(d time.Duration) {
	if d < time.Second {
		d = time.Second
	}
	if p.requeue == 0 || d < p.requeue {
		p.requeue = d
	}
}

func (p *rolloutPlan) event(reason, format string, args ...any) {
	p.eventKind("Normal", reason, format, args...)
}

func (p *rolloutPlan) eventKind(kind, reason, format string, args ...any) {
	p.events = append(p.events, rolloutEvent{kind: kind, reason: reason, message: fmt.Sprintf(format, args...)})
}
