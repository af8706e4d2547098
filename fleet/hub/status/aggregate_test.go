package status

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/metrics"
)

func app(name, cluster, rev string, health flotillav1.HealthStatusCode) flotillav1.Application {
	a := flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: name}}
	a.Spec.Destination.Cluster = cluster
	a.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: rev}
	a.Status.Health.Status = health
	return a
}

func TestAggregate(t *testing.T) {
	cases := []struct {
		name       string
		apps       []flotillav1.Application
		reason     string
		status     metav1.ConditionStatus
		healthy    int32
		revisions  int
		notHealthy []string
	}{
		{name: "empty", reason: "NoApplications", status: metav1.ConditionUnknown},
		{name: "all healthy", apps: []flotillav1.Application{app("a", "c1", "r1", "Healthy"), app("b", "c2", "r1", "Healthy")},
			reason: "Healthy", status: metav1.ConditionTrue, healthy: 2, revisions: 1},
		{name: "degraded first", apps: []flotillav1.Application{app("a", "c1", "r2", "Progressing"), app("b", "c2", "r1", "Degraded"), app("c", "c3", "r1", "Healthy")},
			reason: "Degraded", status: metav1.ConditionFalse, healthy: 1, revisions: 2, notHealthy: []string{"b", "a"}},
		{name: "progressing", apps: []flotillav1.Application{app("a", "c1", "r2", "Progressing"), app("c", "c3", "r1", "Healthy")},
			reason: "Progressing", status: metav1.ConditionFalse, healthy: 1, revisions: 2, notHealthy: []string{"a"}},
		{name: "not reported yet", apps: []flotillav1.Application{app("a", "c1", "", ""), app("c", "c3", "r1", "Healthy")},
			reason: "Pending", status: metav1.ConditionUnknown, healthy: 1, revisions: 1, notHealthy: []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Aggregate(tc.apps)
			assert.Equal(t, tc.reason, got.Healthy.Reason)
			assert.Equal(t, tc.status, got.Healthy.Status)
			assert.Equal(t, tc.healthy, got.Summary.Healthy)
			assert.Len(t, got.Revisions, tc.revisions)
			var names []string
			for _, n := range got.NotHealthy {
				names = append(names, n.Application)
			}
			assert.Equal(t, tc.notHealthy, names)
		})
	}
}

func TestAggregateIsBounded(t *testing.T) {
	var apps []flotillav1.Application
	for i := range 5000 {
		apps = append(apps, app(fmt.Sprintf("app-%04d", i), fmt.Sprintf("c%d", i%500), fmt.Sprintf("rev-%d", i%40), "Degraded"))
	}
	got := Aggregate(apps)
	assert.Len(t, got.NotHealthy, MaxNotHealthy)
	assert.Len(t, got.Revisions, MaxRevisions)
	assert.Equal(t, int32(500), got.Summary.Clusters)
	assert.Equal(t, int32(5000), got.Summary.Degraded)
}

func TestLeadTimeFromCommitTime(t *testing.T) {
	r := &SetReconciler{firstSeen: map[types.NamespacedName]map[string]time.Time{}}
	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "lead", Namespace: "ns"}}
	apps := []flotillav1.Application{app("a", "c1", "r1", "Progressing"), app("b", "c2", "r1", "Healthy")}
	commit := metav1.NewTime(time.Now().Add(-90 * time.Second))
	for i := range apps {
		apps[i].Status.Sync.CommitTime = &commit
	}
	count := func() int { return testutil.CollectAndCount(metrics.LeadTime, "flotilla_commit_to_healthy_seconds") }
	before := count()
	r.observeLeadTime(set, apps, Aggregate(apps))
	assert.Equal(t, before, count(), "not all Healthy yet: nothing observed")

	apps[0].Status.Health.Status = flotillav1.HealthHealthy
	r.observeLeadTime(set, apps, Aggregate(apps))
	r.observeLeadTime(set, apps, Aggregate(apps)) // observed once per revision
	assert.Equal(t, before+1, count())
	h, err := metrics.LeadTime.GetMetricWithLabelValues("ns", "lead")
	assert.NoError(t, err)
	assert.Contains(t, testutilString(h.(interface{ Write(*dto.Metric) error })), "sample_count:1")
}

func testutilString(m interface{ Write(*dto.Metric) error }) string {
	var out dto.Metric
	_ = m.Write(&out)
	return strings.ReplaceAll(out.String(), " ", "")
}
