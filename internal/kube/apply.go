// Package kube holds small Kubernetes client helpers shared by the hub and
// the agent.
package kube

import (
	"context"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Apply server-side-applies a typed object's metadata and spec (never its
// status) under the given field manager, taking ownership of conflicts.
func Apply(ctx context.Context, c client.Client, obj client.Object, manager string) error {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{Object: m}
	delete(u.Object, "status")
	unstructured.RemoveNestedField(u.Object, "metadata", "creationTimestamp")
	return c.Patch(ctx, u, client.Apply, client.FieldOwner(manager), client.ForceOwnership)
}

// Converged reports whether the live object already has the desired spec
// and every desired label and annotation (others may add their own).
func Converged(desiredSpec, liveSpec any, desired, live metav1.Object) bool {
	if !equality.Semantic.DeepEqual(desiredSpec, liveSpec) {
		return false
	}
	for k, v := range desired.GetLabels() {
		if live.GetLabels()[k] != v {
			return false
		}
	}
	for k, v := range desired.GetAnnotations() {
		if live.GetAnnotations()[k] != v {
			return false
		}
	}
	return true
}

// TrimManagedFields is a cache transform that keeps each managedFields
// entry's manager, operation and time but drops its field set, the bulk of
// an object applied server-side. Caches of many objects (the hub's
// Applications, the spoke copies) hold a fraction of the memory.
func TrimManagedFields(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		mf := o.GetManagedFields()
		for i := range mf {
			mf[i].FieldsV1 = nil
		}
		o.SetManagedFields(mf)
	}
	return obj, nil
}
