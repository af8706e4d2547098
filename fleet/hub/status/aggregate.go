// Package status aggregates Application health into ApplicationSet and
// MemberCluster status.
package status

import (
	"fmt"
	"sort"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Bounds keep status small whatever the fleet size.
const (
	MaxRevisions  = 10
	MaxNotHealthy = 50
)

// Count tallies Applications by sync and health.
func Count(apps []flotillav1.Application) flotillav1.ApplicationCounts {
	var c flotillav1.ApplicationCounts
	for i := range apps {
		s := &apps[i].Status
		c.Total++
		switch s.Sync.Status {
		case flotillav1.SyncStatusSynced:
			c.Synced++
		case flotillav1.SyncStatusOutOfSync:
			c.OutOfSync++
		}
		switch s.Health.Status {
		case flotillav1.HealthHealthy:
			c.Healthy++
		case flotillav1.HealthProgressing:
			c.Progressing++
		case flotillav1.HealthDegraded:
			c.Degraded++
		case flotillav1.HealthSuspended:
			c.Suspended++
		case flotillav1.HealthMissing:
			c.Missing++
		default:
			c.Unknown++
		}
	}
	return c
}

// firstOf is the first listed Application of health h (the list is
// bounded, so it may have none: then an empty entry).
func firstOf(list []flotillav1.NotHealthyApplication, h flotillav1.HealthStatusCode) flotillav1.NotHealthyApplication {
	for _, a := range list {
		if a.Health == h || h == flotillav1.HealthUnknown && a.Health == "" {
			return a
		}
	}
	return flotillav1.NotHealthyApplication{Application: "?", Cluster: "?"}
}

// severity orders health from worst to best for the notHealthy list.
var severity = map[flotillav1.HealthStatusCode]int{
	flotillav1.HealthDegraded: 0, flotillav1.HealthMissing: 1, flotillav1.HealthUnknown: 2, "": 2,
	flotillav1.HealthProgressing: 3, flotillav1.HealthSuspended: 4, flotillav1.HealthHealthy: 5,
}

// SetStatus is the aggregated part of an ApplicationSet's status.
type SetStatus struct {
	Summary    flotillav1.ApplicationSetSummary
	Revisions  []flotillav1.RevisionCount
	NotHealthy []flotillav1.NotHealthyApplication
	Healthy    metav1.Condition
}

// Aggregate summarises a set's Applications, bounded.
func Aggregate(apps []flotillav1.Application) SetStatus {
	var out SetStatus
	clusters := map[string]bool{}
	revs := map[string]*flotillav1.RevisionCount{}
	for i := range apps {
		a := &apps[i]
		clusters[a.Spec.Destination.Cluster] = true
		if rev := a.Status.Sync.Revision; rev != "" {
			rc, ok := revs[rev]
			if !ok {
				rc = &flotillav1.RevisionCount{Revision: rev}
				revs[rev] = rc
			}
			rc.Applications++
			if a.Status.Health.Status == flotillav1.HealthHealthy {
				rc.Healthy++
			}
		}
		if a.Status.Health.Status != flotillav1.HealthHealthy {
			msg := a.Status.Health.Message
			if d := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionDelivered); d != nil && d.Status != metav1.ConditionTrue {
				msg = "not delivered: " + d.Message
			} else if a.Status.LastSyncError != "" {
				msg = a.Status.LastSyncError
			}
			out.NotHealthy = append(out.NotHealthy, flotillav1.NotHealthyApplication{
				Cluster: a.Spec.Destination.Cluster, Application: a.Name, Health: a.Status.Health.Status, Sync: a.Status.Sync.Status, Message: kube.Truncate(msg, 1024),
			})
		}
	}
	counts := Count(apps)
	out.Summary = flotillav1.ApplicationSetSummary{Clusters: int32(len(clusters)), Applications: counts.Total, ApplicationCounts: counts}

	for _, rc := range revs {
		out.Revisions = append(out.Revisions, *rc)
	}
	sort.Slice(out.Revisions, func(i, j int) bool {
		a, b := out.Revisions[i], out.Revisions[j]
		if a.Applications != b.Applications {
			return a.Applications > b.Applications
		}
		return a.Revision < b.Revision
	})
	if len(out.Revisions) > MaxRevisions {
		out.Revisions = out.Revisions[:MaxRevisions]
	}
	sort.Slice(out.NotHealthy, func(i, j int) bool {
		a, b := out.NotHealthy[i], out.NotHealthy[j]
		if severity[a.Health] != severity[b.Health] {
			return severity[a.Health] < severity[b.Health]
		}
		return a.Application < b.Application
	})
	if len(out.NotHealthy) > MaxNotHealthy {
		out.NotHealthy = out.NotHealthy[:MaxNotHealthy]
	}

	out.Healthy = healthyOf(counts, out.NotHealthy)
	return out
}

// healthyOf is a set's Healthy condition from its counts and its
// notHealthy list (worst first).
func healthyOf(counts flotillav1.ApplicationCounts, notHealthy []flotillav1.NotHealthyApplication) metav1.Condition {
	h := metav1.Condition{Type: flotillav1.ConditionHealthy}
	switch {
	case counts.Total == 0:
		h.Status, h.Reason, h.Message = metav1.ConditionUnknown, flotillav1.ReasonNoApplications, "the set has no Applications"
	case counts.Healthy == counts.Total:
		h.Status, h.Reason, h.Message = metav1.ConditionTrue, flotillav1.ReasonHealthy, fmt.Sprintf("all %d Applications are Healthy", counts.Total)
	case counts.Degraded > 0:
		h.Status, h.Reason = metav1.ConditionFalse, flotillav1.ReasonDegraded
		h.Message = fmt.Sprintf("%d of %d Applications Degraded, first: %s on %s", counts.Degraded, counts.Total, notHealthy[0].Application, notHealthy[0].Cluster)
	case counts.Progressing > 0:
		h.Status, h.Reason = metav1.ConditionFalse, flotillav1.ReasonProgressing
		h.Message = fmt.Sprintf("%d of %d Applications Healthy, %d Progressing", counts.Healthy, counts.Total, counts.Progressing)
	case counts.Unknown > 0:
		first := firstOf(notHealthy, flotillav1.HealthUnknown)
		h.Status, h.Reason = metav1.ConditionUnknown, flotillav1.ReasonPending
		h.Message = fmt.Sprintf("%d of %d Applications Healthy, %d Unknown (nobody can say: cluster unreachable, agent unavailable or not reported yet), first: %s on %s: %s",
			counts.Healthy, counts.Total, counts.Unknown, first.Application, first.Cluster, kube.Truncate(first.Message, 300))
	default: // Missing or Suspended
		first := notHealthy[0]
		h.Status, h.Reason = metav1.ConditionFalse, string(first.Health)
		h.Message = fmt.Sprintf("%d of %d Applications Healthy, first: %s on %s is %s", counts.Healthy, counts.Total, first.Application, first.Cluster, first.Health)
	}
	return h
}
