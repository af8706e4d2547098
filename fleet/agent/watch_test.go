package agent

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestChangedByOther(t *testing.T) {
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Second))
	cases := []struct {
		name    string
		entries []metav1.ManagedFieldsEntry
		want    bool
	}{
		{"only the agent", []metav1.ManagedFieldsEntry{{Manager: "flotilla-agent", Time: &t0}}, false},
		{"status by the controller manager", []metav1.ManagedFieldsEntry{{Manager: "flotilla-agent", Time: &t0}, {Manager: "kube-controller-manager", Subresource: "status", Time: &t1}}, false},
		{"kubectl edit after the agent", []metav1.ManagedFieldsEntry{{Manager: "flotilla-agent", Time: &t0}, {Manager: "kubectl-edit", Time: &t1}}, true},
		{"agent re-applied after kubectl", []metav1.ManagedFieldsEntry{{Manager: "kubectl-edit", Time: &t0}, {Manager: "flotilla-agent", Time: &t1}}, false},
		{"kubectl scale (no time recorded)", []metav1.ManagedFieldsEntry{{Manager: "flotilla-agent", Time: &t1}, {Manager: "kubectl", Subresource: "scale"}}, true},
		{"same second: the other wins", []metav1.ManagedFieldsEntry{{Manager: "flotilla-agent", Time: &t0}, {Manager: "helm", Time: &t0}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := &unstructured.Unstructured{Object: map[string]any{}}
			u.SetManagedFields(tc.entries)
			if got := changedByOther(u); got != tc.want {
				t.Fatalf("changedByOther = %v, want %v", got, tc.want)
			}
		})
	}
}
