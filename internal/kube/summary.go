package kube

import (
	"fmt"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// Summarize returns the kstatus summary of an object whose readiness is made
// of parts (conditions, in order of importance; a part with an empty Status
// has not been reported yet): Ready, plus Reconciling=True while some part
// is not True yet, or Stalled=True when a part failed in a way stalled says
// needs a person. Ready is True only when observed equals generation and
// every part is True. Reconciling and Stalled are left out when False, so
// applying the result removes them.
func Summarize(generation, observed int64, stalled func(metav1.Condition) bool, parts ...metav1.Condition) []metav1.Condition {
	ready := metav1.Condition{Type: flotillav1.ConditionReady, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonReady}
	if observed != generation {
		ready.Status, ready.Reason = metav1.ConditionUnknown, flotillav1.ReasonProgressing
		ready.Message = fmt.Sprintf("generation %d is not processed yet (observed %d)", generation, observed)
		return []metav1.Condition{ready, flag(flotillav1.ConditionReconciling, ready)}
	}
	var waiting *metav1.Condition
	for i := range parts {
		p := parts[i]
		switch {
		case p.Status == metav1.ConditionTrue:
			continue
		case p.Status == metav1.ConditionFalse && stalled != nil && stalled(p):
			ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, p.Reason, p.Type+": "+p.Message
			return []metav1.Condition{ready, flag(flotillav1.ConditionStalled, ready)}
		case waiting == nil:
			waiting = &parts[i]
		}
	}
	if waiting == nil {
		ready.Message = summaryMessage(parts)
		return []metav1.Condition{ready}
	}
	ready.Status, ready.Reason = waiting.Status, waiting.Reason
	if ready.Status == "" {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionUnknown, flotillav1.ReasonProgressing, waiting.Type+" is not reported yet"
	} else {
		ready.Message = waiting.Type + ": " + waiting.Message
	}
	if ready.Reason == "" {
		ready.Reason = flotillav1.ReasonNotReady
	}
	return []metav1.Condition{ready, flag(flotillav1.ConditionReconciling, ready)}
}

func flag(typ string, ready metav1.Condition) metav1.Condition {
	return metav1.Condition{Type: typ, Status: metav1.ConditionTrue, Reason: ready.Reason, Message: ready.Message}
}

func summaryMessage(parts []metav1.Condition) string {
	if len(parts) == 0 {
		return "ready"
	}
	return parts[len(parts)-1].Message
}

// SummaryChanged reports whether applying summary would change existing:
// a summary condition differs, or a Reconciling/Stalled condition that
// summary leaves out is still there.
func SummaryChanged(existing, summary []metav1.Condition) bool {
	for _, c := range summary {
		if !HasCondition(existing, c) {
			return true
		}
	}
	for _, t := range []string{flotillav1.ConditionReconciling, flotillav1.ConditionStalled} {
		if apimeta.FindStatusCondition(existing, t) != nil && apimeta.FindStatusCondition(summary, t) == nil {
			return true
		}
	}
	return false
}

// Part is the condition of type t in conds, or an unreported one (empty
// Status) for Summarize.
func Part(conds []metav1.Condition, t string) metav1.Condition {
	if c := apimeta.FindStatusCondition(conds, t); c != nil {
		return *c
	}
	return metav1.Condition{Type: t}
}

// ApplicationStalled says which failed Application conditions need a
// person: a render or apply the agent cannot get past, Degraded health, a
// destination cluster that does not exist.
func ApplicationStalled(c metav1.Condition) bool {
	switch c.Reason {
	case flotillav1.ReasonRenderFailed, flotillav1.ReasonEmptyRender, flotillav1.ReasonApplyFailed,
		flotillav1.ReasonDegraded, flotillav1.ReasonClusterNotFound:
		return true
	}
	return false
}
