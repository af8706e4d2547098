package agent

import (
	"context"
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Health assesses one live object with kstatus semantics (Deployments,
// StatefulSets, DaemonSets, ReplicaSets, Jobs, Pods, Services, Ingresses,
// PVCs, and any resource with Ready conditions), plus: a resource whose
// Available condition is False is Progressing.
func Health(u *unstructured.Unstructured) (flotillav1.HealthStatusCode, string) {
	if u == nil {
		return flotillav1.HealthMissing, "not found"
	}
	res, err := status.Compute(u)
	if err != nil {
		return flotillav1.HealthUnknown, err.Error()
	}
	switch res.Status {
	case status.CurrentStatus:
		if conds, found, _ := unstructured.NestedSlice(u.Object, "status", "conditions"); found {
			for _, c := range conds {
				m, _ := c.(map[string]any)
				if m["type"] == "Available" && m["status"] == "False" {
					msg, _ := m["message"].(string)
					return flotillav1.HealthProgressing, msg
				}
			}
		}
		if u.GetKind() == "Job" || u.GetKind() == "CronJob" {
			if s, _, _ := unstructured.NestedBool(u.Object, "spec", "suspend"); s {
				return flotillav1.HealthSuspended, "suspended"
			}
		}
		return flotillav1.HealthHealthy, res.Message
	case status.InProgressStatus, status.TerminatingStatus:
		return flotillav1.HealthProgressing, res.Message
	case status.FailedStatus:
		return flotillav1.HealthDegraded, res.Message
	case status.NotFoundStatus:
		return flotillav1.HealthMissing, res.Message
	default:
		return flotillav1.HealthUnknown, res.Message
	}
}

var rank = map[flotillav1.HealthStatusCode]int{
	flotillav1.HealthDegraded: 0, flotillav1.HealthMissing: 1, flotillav1.HealthUnknown: 2,
	flotillav1.HealthProgressing: 3, flotillav1.HealthSuspended: 4, flotillav1.HealthHealthy: 5,
}

// Worst orders resources worst first and returns the Application's health
// with a message naming the resource that decided it.
func Worst(resources []flotillav1.ResourceStatus) flotillav1.HealthStatus {
	sort.SliceStable(resources, func(i, j int) bool { return rank[resources[i].Health] < rank[resources[j].Health] })
	if len(resources) == 0 {
		return flotillav1.HealthStatus{Status: flotillav1.HealthHealthy, Message: "no resources"}
	}
	w := resources[0]
	if w.Health == flotillav1.HealthHealthy {
		return flotillav1.HealthStatus{Status: flotillav1.HealthHealthy, Message: fmt.Sprintf("all %d resources Healthy", len(resources))}
	}
	name := w.Kind + " " + w.Name
	if w.Namespace != "" {
		name = w.Kind + " " + w.Namespace + "/" + w.Name
	}
	msg := name
	if w.Message != "" {
		msg += ": " + w.Message
	}
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	return flotillav1.HealthStatus{Status: w.Health, Message: msg}
}

// assess turns the sync's results into per-object status and health and
// the Synced condition.
func (r *Reconciler) assess(_ context.Context, s *syncState) (bool, error) {
	var failed []string
	for _, res := range s.results {
		rs := resourceStatus(res)
		if res.Err != nil {
			failed = append(failed, res.Ref.String()+": "+res.Err.Error())
		}
		if m, ok := s.drifted[res.Ref.Key()]; ok && !s.apply {
			rs.Sync, rs.Message = flotillav1.SyncStatusOutOfSync, "drifted from Git (changed by "+m+")"
		}
		if rs.Sync != flotillav1.SyncStatusSynced {
			s.out.syncStatus = flotillav1.SyncStatusOutOfSync
		}
		s.out.resources = append(s.out.resources, rs)
	}
	s.out.count = len(s.out.resources)
	switch {
	case len(failed) > 0:
		s.out.syncErr = fmt.Sprintf("%d of %d objects were not applied: %s", len(failed), len(s.results), kube.Truncate(strings.Join(failed, "; "), 3000))
		s.out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonApplyFailed, Message: s.out.syncErr}
	case s.out.syncStatus == flotillav1.SyncStatusOutOfSync:
		s.out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonOutOfSync,
			Message: outOfSyncMessage(s.auto, s.selfHeal, s.prunes, len(s.gone), len(s.drifted))}
	default:
		s.out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonSynced,
			Message: fmt.Sprintf("%d objects at %s", len(s.results), git.ShortSHA(s.memo.revision))}
	}
	s.out.corrected = max(s.memo.corrected, s.app.Status.DriftCorrections)
	return false, nil
}

// resourceStatus is one object's line in status.resources.
func resourceStatus(res Result) flotillav1.ResourceStatus {
	// Cut to the status fields' limits: an invalid object is reported, not
	// allowed to make the status unwritable.
	rs := flotillav1.ResourceStatus{Group: kube.Truncate(res.Ref.Group, 253), Version: kube.Truncate(res.Ref.Version, 63),
		Kind: kube.Truncate(res.Ref.Kind, 63), Namespace: kube.Truncate(res.Ref.Namespace, 63), Name: kube.Truncate(res.Ref.Name, 253),
		Sync: flotillav1.SyncStatusSynced}
	switch {
	case res.Err != nil:
		rs.Health, rs.Sync, rs.Message = flotillav1.HealthDegraded, flotillav1.SyncStatusOutOfSync, kube.Truncate(res.Err.Error(), 1000)
	case res.ReadErr != nil:
		rs.Health, rs.Sync, rs.Message = flotillav1.HealthUnknown, flotillav1.SyncStatusUnknown, kube.Truncate("cannot read it: "+res.ReadErr.Error(), 1000)
	case res.Live == nil:
		rs.Health, rs.Sync, rs.Message = flotillav1.HealthMissing, flotillav1.SyncStatusOutOfSync, "not found"
	default:
		rs.Health, rs.Message = Health(res.Live)
		rs.Message = kube.Truncate(rs.Message, 1000)
	}
	return rs
}

func outOfSyncMessage(auto, selfHeal, prune bool, gone, drifted int) string {
	var parts []string
	if gone > 0 && !prune {
		parts = append(parts, fmt.Sprintf("%d objects left Git but prune is off", gone))
	}
	if drifted > 0 && !selfHeal {
		parts = append(parts, fmt.Sprintf("%d objects drifted and selfHeal is off", drifted))
	}
	if !auto {
		parts = append(parts, "automated sync is off: sync it with 'flotilla refresh --sync' (annotation flotilla.dev/sync=<new value>)")
	}
	return strings.Join(parts, "; ")
}
