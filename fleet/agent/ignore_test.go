package agent

import (
	"testing"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestRespectIgnoreDifferences(t *testing.T) {
	desired := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web", "namespace": "shop"},
		"spec": map[string]any{"replicas": int64(2), "template": map[string]any{"spec": map[string]any{"containers": []any{
			map[string]any{"name": "web", "image": "web:1"}, map[string]any{"name": "proxy", "image": "proxy:1"},
		}}}},
	}}
	live := desired.DeepCopy()
	_ = unstructured.SetNestedField(live.Object, int64(7), "spec", "replicas")
	_ = unstructured.SetNestedField(live.Object, "injected", "metadata", "annotations", "sidecar")
	containers, _, _ := unstructured.NestedSlice(live.Object, "spec", "template", "spec", "containers")
	containers[1].(map[string]any)["image"] = "proxy:patched"
	_ = unstructured.SetNestedSlice(live.Object, containers, "spec", "template", "spec", "containers")
	live.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "injector", Operation: metav1.ManagedFieldsOperationUpdate, FieldsType: "FieldsV1",
		FieldsV1: metav1.NewFieldsV1(`{"f:spec":{"f:template":{"f:spec":{"f:containers":{"k:{\"name\":\"proxy\"}":{"f:image":{}}}}}}}`)}})

	rules := ignoreRules{
		{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas", "/metadata/annotations/sidecar"}},
		{Group: "apps", Kind: "Deployment", Name: "web", ManagedFieldsManagers: []string{"injector"}},
		{Group: "apps", Kind: "Deployment", Name: "other", JSONPointers: []string{"/spec/template"}},
	}
	got := rules.respect(desired, live)
	replicas, _, _ := unstructured.NestedInt64(got.Object, "spec", "replicas")
	assert.Equal(t, int64(7), replicas, "the live replicas are applied")
	assert.Equal(t, "injected", got.GetAnnotations()["sidecar"])
	cs, _, _ := unstructured.NestedSlice(got.Object, "spec", "template", "spec", "containers")
	assert.Equal(t, "web:1", cs[0].(map[string]any)["image"], "a field nobody else owns follows Git")
	assert.Equal(t, "proxy:patched", cs[1].(map[string]any)["image"], "the injector's field keeps its live value")
	d, _, _ := unstructured.NestedInt64(desired.Object, "spec", "replicas")
	assert.Equal(t, int64(2), d, "the render itself is not changed")

	assert.Same(t, desired, rules.respect(desired, nil), "a new object is created as Git says")
	cm := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "ConfigMap", "metadata": map[string]any{"name": "web"}}}
	assert.Same(t, cm, rules.respect(cm, cm.DeepCopy()), "no rule for the kind")

	// A field the live object lacks is left out rather than forced.
	noReplicas := live.DeepCopy()
	unstructured.RemoveNestedField(noReplicas.Object, "spec", "replicas")
	got = ignoreRules{{Group: "apps", Kind: "Deployment", JSONPointers: []string{"/spec/replicas"}}}.respect(desired, noReplicas)
	_, found, _ := unstructured.NestedInt64(got.Object, "spec", "replicas")
	assert.False(t, found)
}
