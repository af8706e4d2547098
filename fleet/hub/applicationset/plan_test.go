package applicationset

import (
	"testing"

	"github.com/stretchr/testify/assert"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func app(name, path string) *flotillav1.Application {
	return &flotillav1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{flotillav1.LabelApplicationSet: "s"}},
		Spec:       flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: "r", Path: path}, Destination: flotillav1.ApplicationDestination{Cluster: name}},
	}
}

func names(apps []*flotillav1.Application) []string {
	var out []string
	for _, a := range apps {
		out = append(out, a.Name)
	}
	return out
}

func TestPlanWrites(t *testing.T) {
	existing := map[string]*flotillav1.Application{"same": app("same", "p"), "changed": app("changed", "old"), "gone": app("gone", "p")}
	desired := []*flotillav1.Application{app("same", "p"), app("changed", "new"), app("new", "p")}
	cases := []struct {
		policy               flotillav1.ApplicationsSyncPolicy
		create, update, del  []string
		kept, skippedUpdates int
	}{
		{policy: "", create: []string{"new"}, update: []string{"changed"}, del: []string{"gone"}, kept: 1},
		{policy: flotillav1.ApplicationsSyncSync, create: []string{"new"}, update: []string{"changed"}, del: []string{"gone"}, kept: 1},
		{policy: flotillav1.ApplicationsSyncCreateOnly, create: []string{"new"}, kept: 3, skippedUpdates: 1},
		{policy: flotillav1.ApplicationsSyncCreateUpdate, create: []string{"new"}, update: []string{"changed"}, kept: 2},
		{policy: flotillav1.ApplicationsSyncCreateDelete, create: []string{"new"}, del: []string{"gone"}, kept: 2, skippedUpdates: 1},
	}
	for _, tc := range cases {
		t.Run(string(tc.policy), func(t *testing.T) {
			set := &flotillav1.ApplicationSet{}
			if tc.policy != "" {
				set.Spec.SyncPolicy = &flotillav1.ApplicationSetSyncPolicy{ApplicationsSync: tc.policy}
			}
			p := PlanWrites(set, desired, existing, nil)
			assert.Equal(t, tc.create, names(p.Create), "create")
			assert.Equal(t, tc.update, names(p.Update), "update")
			assert.Equal(t, tc.del, names(p.Delete), "delete")
			assert.Equal(t, tc.kept, p.Kept(), "kept")
			assert.Equal(t, tc.skippedUpdates, len(p.HeldUpdates), "skipped updates")
		})
	}
}

func TestSelectsAny(t *testing.T) {
	mc := func(labels map[string]string) *flotillav1.MemberCluster {
		return &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "c", Labels: labels}}
	}
	cases := []struct {
		name string
		gens string
		old  map[string]string
		new  map[string]string
		want bool
	}{
		{name: "selected now", gens: `[{clusters: {selector: {matchLabels: {env: prod}}}}]`, new: map[string]string{"env": "prod"}, want: true},
		{name: "selected before the change", gens: `[{clusters: {selector: {matchLabels: {env: prod}}}}]`, old: map[string]string{"env": "prod"}, new: map[string]string{"env": "dev"}, want: true},
		{name: "never selected", gens: `[{clusters: {selector: {matchLabels: {env: prod}}}}]`, old: map[string]string{"env": "dev"}, new: map[string]string{"env": "qa"}, want: false},
		{name: "no clusters generator", gens: `[{list: {elements: [{a: b}]}}]`, new: map[string]string{"env": "prod"}, want: false},
		{name: "nested in a matrix", gens: `[{matrix: {generators: [{list: {elements: [{a: b}]}}, {clusters: {selector: {matchLabels: {env: prod}}}}]}}]`, new: map[string]string{"env": "prod"}, want: true},
		{name: "templated selector cannot be ruled out", gens: `[{matrix: {generators: [{list: {elements: [{e: prod}]}}, {clusters: {selector: {matchLabels: {env: '{{ .e }}'}}}}]}}]`, new: map[string]string{"env": "x"}, want: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := &flotillav1.ApplicationSet{}
			if err := yaml.Unmarshal([]byte(tc.gens), &set.Spec.Generators); err != nil {
				t.Fatal(err)
			}
			var oldObj *flotillav1.MemberCluster
			if tc.old != nil {
				oldObj = mc(tc.old)
			}
			got := selectsAny(set, objOrNil(oldObj), mc(tc.new))
			assert.Equal(t, tc.want, got)
		})
	}
}

func objOrNil(m *flotillav1.MemberCluster) clientObject {
	if m == nil {
		return nil
	}
	return m
}

type clientObject = client.Object

func TestPlanHoldsMassDeletion(t *testing.T) {
	existing := map[string]*flotillav1.Application{"a": app("a", "p"), "b": app("b", "p"), "c": app("c", "p"), "d": app("d", "p")}
	pct := func(n int32) *int32 { return &n }
	cases := []struct {
		name     string
		desired  []*flotillav1.Application
		max      *int32
		confirm  bool
		held     bool
		deletes  int
		heldDels int
	}{
		{name: "emptied generator: all held", held: true, heldDels: 4},
		{name: "emptied and confirmed", confirm: true, deletes: 4},
		{name: "one of four leaves", desired: []*flotillav1.Application{app("a", "p"), app("b", "p"), app("c", "p")}, deletes: 1},
		{name: "three of four over 50%", desired: []*flotillav1.Application{app("a", "p")}, max: pct(50), held: true, heldDels: 3},
		{name: "two of four at 50%", desired: []*flotillav1.Application{app("a", "p"), app("b", "p")}, max: pct(50), deletes: 2},
		{name: "any deletion at 0%", desired: []*flotillav1.Application{app("a", "p"), app("b", "p"), app("c", "p")}, max: pct(0), held: true, heldDels: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := &flotillav1.ApplicationSet{Spec: flotillav1.ApplicationSetSpec{SyncPolicy: &flotillav1.ApplicationSetSyncPolicy{MaxDeletePercent: tc.max}}}
			if tc.confirm {
				set.Annotations = map[string]string{flotillav1.AnnotationAllowDeletes: "true"}
			}
			p := PlanWrites(set, tc.desired, existing, nil)
			assert.Equal(t, tc.held, p.DeletionsHeld)
			assert.Len(t, p.Delete, tc.deletes)
			assert.Len(t, p.HeldDeletes, tc.heldDels)
		})
	}
}

func TestPlanDeletesGoneClustersWithoutHold(t *testing.T) {
	existing := map[string]*flotillav1.Application{"a": app("a", "p"), "b": app("b", "p")} // destination cluster = name
	gone := func(name string) bool { return name == "a" || name == "b" }
	p := PlanWrites(&flotillav1.ApplicationSet{}, nil, existing, gone)
	assert.False(t, p.DeletionsHeld, "the clusters are gone: their Applications go too")
	assert.Len(t, p.Delete, 2)
	p = PlanWrites(&flotillav1.ApplicationSet{}, nil, existing, func(name string) bool { return name == "a" })
	assert.True(t, p.DeletionsHeld, "b's cluster is still there and it would be the last Application deleted")
	assert.Equal(t, []string{"a"}, names(p.Delete))
	assert.Equal(t, []string{"b"}, names(p.HeldDeletes))
}
