package agent

import (
	"fmt"
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
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
