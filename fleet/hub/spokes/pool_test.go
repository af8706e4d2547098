package spokes

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func TestSpokeMapperKnowsApplicationsOnly(t *testing.T) {
	m, err := spokeMapper(nil, nil)
	require.NoError(t, err)
	mapping, err := m.RESTMapping(flotillav1.GroupVersion.WithKind("Application").GroupKind(), flotillav1.GroupVersion.Version)
	require.NoError(t, err)
	assert.Equal(t, "applications", mapping.Resource.Resource)
	assert.Equal(t, meta.RESTScopeNameNamespace, mapping.Scope.Name())
	_, err = m.RESTMapping(flotillav1.GroupVersion.WithKind("MemberCluster").GroupKind())
	assert.True(t, meta.IsNoMatchError(err), "the hub writes nothing else on spokes: %v", err)
}

func TestSlimSpokeCopyKeepsWhatDeliveryReads(t *testing.T) {
	a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: "n", Namespace: "ns",
		Labels: map[string]string{"l": "v"}, Annotations: map[string]string{"a": "v"}, Finalizers: []string{"f"},
		OwnerReferences: []metav1.OwnerReference{{Name: "o"}}, ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "m"}}}}
	a.Spec.Source.Path = "apps/x"
	a.Status.Health.Status = flotillav1.HealthHealthy
	out, err := slimSpokeCopy(a)
	require.NoError(t, err)
	s := out.(*flotillav1.Application)
	assert.Nil(t, s.ManagedFields)
	assert.Nil(t, s.OwnerReferences)
	assert.Nil(t, s.Finalizers)
	assert.Equal(t, "apps/x", s.Spec.Source.Path)
	assert.Equal(t, map[string]string{"l": "v"}, s.Labels)
	assert.Equal(t, map[string]string{"a": "v"}, s.Annotations)
	assert.Equal(t, flotillav1.HealthHealthy, s.Status.Health.Status)
}
