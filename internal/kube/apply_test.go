package kube

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestTrimManagedFields(t *testing.T) {
	now := metav1.NewTime(time.Now())
	u := &unstructured.Unstructured{Object: map[string]any{}}
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "flotilla-hub", Operation: metav1.ManagedFieldsOperationApply, Time: &now,
		FieldsType: "FieldsV1", FieldsV1: metav1.NewFieldsV1(`{"f:spec":{}}`)}})
	out, err := TrimManagedFields(u)
	if err != nil {
		t.Fatal(err)
	}
	mf := out.(*unstructured.Unstructured).GetManagedFields()
	if len(mf) != 1 || mf[0].Manager != "flotilla-hub" || mf[0].Time == nil || mf[0].FieldsV1 != nil {
		t.Fatalf("got %+v; want the manager and time kept, the field set dropped", mf)
	}
	if _, err := TrimManagedFields("not an object"); err != nil {
		t.Fatal(err)
	}
}
