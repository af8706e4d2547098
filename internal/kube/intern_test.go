package kube

import (
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// fleetApp is a hub Application as the fan-out benchmark makes them,
// delivered, with an owner, finalizer and managedFields.
func fleetApp(i int) *flotillav1.Application {
	cluster := fmt.Sprintf("bench-%03d", i%100)
	app := fmt.Sprintf("app-%03d", i/100)
	now := metav1.NewTime(time.Unix(1700000000, 0))
	a := &flotillav1.Application{
		TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "Application"},
		ObjectMeta: metav1.ObjectMeta{Name: cluster + "-" + app, Namespace: "default", UID: types.UID(fmt.Sprintf("3f1c2a4e-0000-4000-8000-%012d", i)),
			ResourceVersion: fmt.Sprint(100000 + i), Generation: 1, CreationTimestamp: now,
			Labels:          map[string]string{flotillav1.LabelApplicationSet: "fanout", flotillav1.LabelCluster: cluster},
			Finalizers:      []string{flotillav1.FinalizerDelivery},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: flotillav1.GroupVersion.String(), Kind: "ApplicationSet", Name: "fanout", UID: "9d1c2a4e-0000-4000-8000-000000000001"}},
			ManagedFields: []metav1.ManagedFieldsEntry{
				{Manager: flotillav1.FieldManagerHub, Operation: metav1.ManagedFieldsOperationApply, APIVersion: flotillav1.GroupVersion.String(), Time: &now, FieldsType: "FieldsV1"},
				{Manager: "flotilla-hub-delivery", Operation: metav1.ManagedFieldsOperationApply, APIVersion: flotillav1.GroupVersion.String(), Time: &now, FieldsType: "FieldsV1", Subresource: "status"},
			}},
	}
	a.Spec.Source = flotillav1.ApplicationSource{RepoURL: "https://git.example.com/fleet.git", TargetRevision: "main", Path: "apps/" + app}
	a.Spec.Destination = flotillav1.ApplicationDestination{Cluster: cluster, Namespace: app}
	a.Status.ObservedGeneration = 1
	a.Status.Conditions = []metav1.Condition{{Type: flotillav1.ConditionDelivered, Status: metav1.ConditionTrue, Reason: "Delivered", ObservedGeneration: 1,
		Message: "applied to fanout-001/default." + a.Name + " on " + cluster, LastTransitionTime: now}}
	a.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: "0123456789abcdef0123456789abcdef01234567"}
	a.Status.Health = flotillav1.HealthStatus{Status: flotillav1.HealthHealthy}
	return a
}

func TestSlimCacheKeepsValues(t *testing.T) {
	a := fleetApp(7)
	want := a.DeepCopy()
	want.ManagedFields[0].FieldsV1, want.ManagedFields[1].FieldsV1 = nil, nil
	out, err := SlimCache(a)
	require.NoError(t, err)
	assert.True(t, equality.Semantic.DeepEqual(want, out), "interning changes no value")
}

// heapOf decodes n Applications the way a watch does (each from its own
// JSON), applies transform, keeps them, and returns the heap they hold.
func heapOf(t *testing.T, n int, transform func(any) (any, error)) float64 {
	raws := make([][]byte, n)
	for i := range raws {
		raw, err := json.Marshal(fleetApp(i))
		require.NoError(t, err)
		raws[i] = raw
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := make([]any, n)
	for i, raw := range raws {
		a := &flotillav1.Application{}
		require.NoError(t, json.Unmarshal(raw, a))
		o, err := transform(a)
		require.NoError(t, err)
		kept[i] = o
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	runtime.KeepAlive(raws)
	return float64(after.HeapAlloc-before.HeapAlloc) / float64(n)
}

func TestSlimCacheShrinksCachedApplications(t *testing.T) {
	const n = 10000
	trimmed := heapOf(t, n, TrimManagedFields)
	slim := heapOf(t, n, SlimCache)
	t.Logf("bytes per cached Application: managedFields trimmed %.0f, interned too %.0f (%.0f%% less)", trimmed, slim, 100*(1-slim/trimmed))
	assert.Less(t, slim, 0.85*trimmed, "interning saves at least 15%% per cached Application")
}
