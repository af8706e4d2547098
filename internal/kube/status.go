package kube

import (
	"context"
	"fmt"
	"strings"

	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// ApplyStatus server-side-applies the given status fields of obj under a
// field manager of its own, so that several controllers can each own their
// part of one status (conditions are merged by type).
func ApplyStatus(ctx context.Context, c client.Client, obj client.Object, kind, manager string, status map[string]any) error {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": flotillav1.GroupVersion.String(),
		"kind":       kind,
		"metadata":   map[string]any{"name": obj.GetName(), "namespace": obj.GetNamespace()},
		"status":     status,
	}}
	if obj.GetNamespace() == "" {
		delete(u.Object["metadata"].(map[string]any), "namespace")
	}
	if err := c.Status().Patch(ctx, u, client.Apply, client.FieldOwner(manager), client.ForceOwnership); err != nil {
		return fmt.Errorf("apply %s status of %s: %w", kind, client.ObjectKeyFromObject(obj), err)
	}
	return nil
}

// Conditions renders conditions for ApplyStatus, keeping each existing
// condition's lastTransitionTime when its status did not change.
func Conditions(existing []metav1.Condition, generation int64, conds ...metav1.Condition) []any {
	out := make([]any, 0, len(conds))
	for _, c := range conds {
		c.ObservedGeneration = generation
		c.LastTransitionTime = metav1.Now()
		if old := apimeta.FindStatusCondition(existing, c.Type); old != nil && old.Status == c.Status {
			c.LastTransitionTime = old.LastTransitionTime
		}
		out = append(out, map[string]any{
			"type": c.Type, "status": string(c.Status), "reason": c.Reason,
			"message": Truncate(c.Message, 32768), "observedGeneration": c.ObservedGeneration,
			"lastTransitionTime": c.LastTransitionTime.UTC().Format("2006-01-02T15:04:05Z"),
		})
	}
	return out
}

// HasCondition reports whether existing already holds c: same type,
// status, reason and message.
func HasCondition(existing []metav1.Condition, c metav1.Condition) bool {
	old := apimeta.FindStatusCondition(existing, c.Type)
	return old != nil && old.Status == c.Status && old.Reason == c.Reason && old.Message == c.Message
}

// Truncate cuts s to at most n bytes, marking the cut with "...".
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-3] + "..."
}

// FirstLine is err's message up to its first line break, trimmed: for
// conditions and errors that must stay one line (Helm and apiserver
// errors can run to many).
func FirstLine(err error) string {
	s := strings.TrimSpace(err.Error())
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}
