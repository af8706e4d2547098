package delivery

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

func TestClusterChangedPassesWhatDeliveryActsOn(t *testing.T) {
	mc := func(gen int64, ready metav1.ConditionStatus, apps int32) *flotillav1.MemberCluster {
		m := &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "c", Generation: gen}}
		m.Status.Conditions = []metav1.Condition{{Type: flotillav1.ConditionReady, Status: ready, Message: "probe"}}
		m.Status.Applications.Total = apps
		return m
	}
	update := func(a, b *flotillav1.MemberCluster) bool {
		return clusterChanged.Update(event.UpdateEvent{ObjectOld: a, ObjectNew: b})
	}
	assert.False(t, update(mc(1, metav1.ConditionTrue, 3), mc(1, metav1.ConditionTrue, 4)), "application counts: nothing to deliver")
	assert.True(t, update(mc(1, metav1.ConditionTrue, 3), mc(2, metav1.ConditionTrue, 3)), "spec changed (paused, namespace)")
	assert.True(t, update(mc(1, metav1.ConditionUnknown, 3), mc(1, metav1.ConditionTrue, 3)), "became Ready: deliver")
	assert.True(t, update(mc(1, metav1.ConditionTrue, 3), mc(1, metav1.ConditionFalse, 3)), "lost: report not delivered")
	deleting := mc(1, metav1.ConditionTrue, 3)
	deleting.DeletionTimestamp = &metav1.Time{}
	assert.True(t, update(mc(1, metav1.ConditionTrue, 3), deleting), "being deleted")
	assert.True(t, clusterChanged.Create(event.CreateEvent{Object: mc(1, "", 0)}), "created")
	assert.True(t, clusterChanged.Delete(event.DeleteEvent{Object: mc(1, "", 0)}), "deleted")
}

func TestStatusDigestIgnoresTransitionTimesOnly(t *testing.T) {
	cond := func(status metav1.ConditionStatus, at metav1.Time) []any {
		return kube.Conditions([]metav1.Condition{{Type: flotillav1.ConditionDelivered, Status: metav1.ConditionFalse, LastTransitionTime: at}}, 1,
			metav1.Condition{Type: flotillav1.ConditionDelivered, Status: status, Reason: "Delivered", Message: "applied"})
	}
	a, err := statusDigest(map[string]any{"observedGeneration": int64(1), "conditions": cond(metav1.ConditionTrue, metav1.Unix(1, 0))})
	require.NoError(t, err)
	b, err := statusDigest(map[string]any{"observedGeneration": int64(1), "conditions": cond(metav1.ConditionTrue, metav1.Unix(2, 0))})
	require.NoError(t, err)
	assert.Equal(t, a, b, "only the transition time differs")
	c, err := statusDigest(map[string]any{"observedGeneration": int64(2), "conditions": cond(metav1.ConditionTrue, metav1.Unix(1, 0))})
	require.NoError(t, err)
	assert.NotEqual(t, a, c)
	d, err := statusDigest(map[string]any{"observedGeneration": int64(1), "conditions": cond(metav1.ConditionFalse, metav1.Unix(1, 0))})
	require.NoError(t, err)
	assert.NotEqual(t, a, d)
}
