package status

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func TestWriteLimiter(t *testing.T) {
	l := newWriteLimiter(time.Hour)
	a, b := types.NamespacedName{Name: "a"}, types.NamespacedName{Name: "b"}
	assert.LessOrEqual(t, l.wait(a), time.Duration(0), "never written: write now")
	l.wrote(a)
	assert.Greater(t, l.wait(a), 59*time.Minute, "just written: wait about the interval")
	assert.LessOrEqual(t, l.wait(b), time.Duration(0), "another key is not held back")
	l.forget(a)
	assert.LessOrEqual(t, l.wait(a), time.Duration(0), "forgotten: write now")
	assert.Equal(t, time.Second, newWriteLimiter(0).interval, "default interval")
}

func TestSameSetStatus(t *testing.T) {
	apps := []flotillav1.Application{app("a", "c1", "r1", flotillav1.HealthHealthy), app("b", "c2", "r1", flotillav1.HealthProgressing)}
	agg := Aggregate(apps)
	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Generation: 3}}
	assert.False(t, sameSetStatus(set, agg), "empty status differs")

	cond := agg.Healthy
	cond.ObservedGeneration = 3
	set.Status.Conditions = []metav1.Condition{cond}
	set.Status.Summary, set.Status.Revisions, set.Status.NotHealthy = agg.Summary, agg.Revisions, agg.NotHealthy
	assert.True(t, sameSetStatus(set, agg), "status already says it")

	set.Generation = 4
	assert.False(t, sameSetStatus(set, agg), "a new generation must be observed")
	set.Generation = 3

	healthy := Aggregate([]flotillav1.Application{app("a", "c1", "r1", flotillav1.HealthHealthy), app("b", "c2", "r1", flotillav1.HealthHealthy)})
	assert.False(t, sameSetStatus(set, healthy), "one more Healthy changes the status")

	empty := Aggregate(nil)
	set.Status = flotillav1.ApplicationSetStatus{Conditions: []metav1.Condition{{Type: flotillav1.ConditionHealthy, Status: empty.Healthy.Status,
		Reason: empty.Healthy.Reason, Message: empty.Healthy.Message, ObservedGeneration: 3}}, Revisions: []flotillav1.RevisionCount{}}
	assert.True(t, sameSetStatus(set, empty), "nil and empty lists are the same status")
}
