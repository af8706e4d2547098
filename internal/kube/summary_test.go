package kube_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

func cond(t string, s metav1.ConditionStatus, reason string) metav1.Condition {
	return metav1.Condition{Type: t, Status: s, Reason: reason, Message: t + " says " + reason}
}

// kstatusOf runs cli-utils' kstatus on an object of kind carrying conds.
func kstatusOf(t *testing.T, obj runtime.Object, conds []metav1.Condition) status.Status {
	t.Helper()
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	require.NoError(t, err)
	u := &unstructured.Unstructured{Object: raw}
	list := make([]any, 0, len(conds))
	for _, c := range conds {
		list = append(list, map[string]any{"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": c.Message})
	}
	require.NoError(t, unstructured.SetNestedSlice(u.Object, list, "status", "conditions"))
	res, err := status.Compute(u)
	require.NoError(t, err)
	return res.Status
}

func TestSummarizeKstatus(t *testing.T) {
	T, F, U := metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown
	set := func(gen, observed int64) runtime.Object {
		s := &flotillav1.ApplicationSet{TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "ApplicationSet"}}
		s.Name, s.Generation, s.Status.ObservedGeneration = "s", gen, observed
		return s
	}
	app := func(gen, observed int64) runtime.Object {
		a := &flotillav1.Application{TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "Application"}}
		a.Name, a.Generation, a.Status.ObservedGeneration = "a", gen, observed
		return a
	}
	setStalled := func(c metav1.Condition) bool {
		return c.Type == flotillav1.ConditionParametersGenerated || c.Reason == flotillav1.ReasonDegraded
	}
	cases := []struct {
		name        string
		obj         runtime.Object
		gen, obs    int64
		stalled     func(metav1.Condition) bool
		parts       []metav1.Condition
		ready       metav1.ConditionStatus
		readyReason string
		want        status.Status
	}{
		{"set all True", set(2, 2), 2, 2, setStalled, []metav1.Condition{
			cond(flotillav1.ConditionParametersGenerated, T, "Generated"), cond(flotillav1.ConditionResourcesUpToDate, T, "UpToDate"), cond(flotillav1.ConditionHealthy, T, "Healthy")},
			T, flotillav1.ReasonReady, status.CurrentStatus},
		{"set Progressing", set(2, 2), 2, 2, setStalled, []metav1.Condition{
			cond(flotillav1.ConditionParametersGenerated, T, "Generated"), cond(flotillav1.ConditionResourcesUpToDate, T, "UpToDate"), cond(flotillav1.ConditionHealthy, F, "Progressing")},
			F, "Progressing", status.InProgressStatus},
		{"set Degraded stalls", set(2, 2), 2, 2, setStalled, []metav1.Condition{
			cond(flotillav1.ConditionParametersGenerated, T, "Generated"), cond(flotillav1.ConditionResourcesUpToDate, F, "WriteFailed"), cond(flotillav1.ConditionHealthy, F, "Degraded")},
			F, "Degraded", status.FailedStatus},
		{"set template error stalls", set(3, 3), 3, 3, setStalled, []metav1.Condition{
			cond(flotillav1.ConditionParametersGenerated, F, "GenerationFailed"), cond(flotillav1.ConditionResourcesUpToDate, T, "UpToDate"), cond(flotillav1.ConditionHealthy, T, "Healthy")},
			F, "GenerationFailed", status.FailedStatus},
		{"set new generation not processed", set(4, 3), 4, 3, setStalled, []metav1.Condition{
			cond(flotillav1.ConditionParametersGenerated, T, "Generated"), cond(flotillav1.ConditionResourcesUpToDate, T, "UpToDate"), cond(flotillav1.ConditionHealthy, T, "Healthy")},
			U, flotillav1.ReasonProgressing, status.InProgressStatus},
		{"app not reported yet", app(1, 1), 1, 1, kube.ApplicationStalled, []metav1.Condition{
			cond(flotillav1.ConditionDelivered, T, "Delivered"), {Type: flotillav1.ConditionSynced}, {Type: flotillav1.ConditionHealthy}},
			U, flotillav1.ReasonProgressing, status.InProgressStatus},
		{"app Healthy", app(1, 1), 1, 1, kube.ApplicationStalled, []metav1.Condition{
			cond(flotillav1.ConditionDelivered, T, "Delivered"), cond(flotillav1.ConditionSynced, T, "Synced"), cond(flotillav1.ConditionHealthy, T, "Healthy")},
			T, flotillav1.ReasonReady, status.CurrentStatus},
		{"app render failed", app(1, 1), 1, 1, kube.ApplicationStalled, []metav1.Condition{
			cond(flotillav1.ConditionDelivered, T, "Delivered"), cond(flotillav1.ConditionSynced, F, flotillav1.ReasonRenderFailed), cond(flotillav1.ConditionHealthy, U, "Unknown")},
			F, flotillav1.ReasonRenderFailed, status.FailedStatus},
		{"app cluster unreachable", app(1, 1), 1, 1, kube.ApplicationStalled, []metav1.Condition{
			cond(flotillav1.ConditionDelivered, F, flotillav1.ReasonClusterUnreachable), cond(flotillav1.ConditionSynced, T, "Synced"), cond(flotillav1.ConditionHealthy, T, "Healthy")},
			F, flotillav1.ReasonClusterUnreachable, status.InProgressStatus},
		{"app cluster missing", app(1, 1), 1, 1, kube.ApplicationStalled, []metav1.Condition{
			cond(flotillav1.ConditionDelivered, F, flotillav1.ReasonClusterNotFound), {Type: flotillav1.ConditionSynced}, {Type: flotillav1.ConditionHealthy}},
			F, flotillav1.ReasonClusterNotFound, status.FailedStatus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := kube.Summarize(tc.gen, tc.obs, tc.stalled, tc.parts...)
			ready := kube.Part(got, flotillav1.ConditionReady)
			assert.Equal(t, tc.ready, ready.Status, ready.Message)
			assert.Equal(t, tc.readyReason, ready.Reason)
			assert.Equal(t, tc.want, kstatusOf(t, tc.obj, append(tc.parts, got...)))
			assert.False(t, kube.SummaryChanged(append(tc.parts, got...), got), "a written summary is unchanged")
		})
	}
}

func TestSummaryChangedDropsFlags(t *testing.T) {
	ready := []metav1.Condition{{Type: flotillav1.ConditionReady, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonReady, Message: "ok"}}
	existing := append([]metav1.Condition{{Type: flotillav1.ConditionStalled, Status: metav1.ConditionTrue, Reason: "X"}}, ready...)
	assert.True(t, kube.SummaryChanged(existing, ready), "a Stalled condition the summary leaves out must be removed")
	assert.False(t, kube.SummaryChanged(ready, ready))
}
