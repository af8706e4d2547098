package cli

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/applicationset"
)

// TestDiffAgreesWithController: `flotilla diff` shows, for every policy,
// exactly the creates, updates, deletes and held changes the hub's
// controller plans — annotations and labels included.
func TestDiffAgreesWithController(t *testing.T) {
	app := func(name, path string, labels, ann map[string]string) *flotillav1.Application {
		return &flotillav1.Application{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "team", Labels: labels, Annotations: ann},
			Spec:       flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: "https://git.example/r.git", Path: path}, Destination: flotillav1.ApplicationDestination{Cluster: "c"}},
		}
	}
	l := map[string]string{flotillav1.LabelApplicationSet: "s"}
	existing := map[string]*flotillav1.Application{
		"same":       app("same", "p", l, map[string]string{"a": "1"}),
		"spec":       app("spec", "old", l, nil),
		"annotation": app("annotation", "p", l, map[string]string{"a": "1"}),
		"label":      app("label", "p", l, nil),
		"gone":       app("gone", "p", l, nil),
	}
	desired := []*flotillav1.Application{
		app("same", "p", l, map[string]string{"a": "1"}),
		app("spec", "new", l, nil),
		app("annotation", "p", l, map[string]string{"a": "2"}),
		app("label", "p", map[string]string{flotillav1.LabelApplicationSet: "s", "tier": "gold"}, nil),
		app("new", "p", l, nil),
	}
	policies := []flotillav1.ApplicationsSyncPolicy{"", flotillav1.ApplicationsSyncSync, flotillav1.ApplicationsSyncCreateOnly,
		flotillav1.ApplicationsSyncCreateUpdate, flotillav1.ApplicationsSyncCreateDelete}
	for _, policy := range policies {
		t.Run(string(policy), func(t *testing.T) {
			set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "team"}}
			if policy != "" {
				set.Spec.SyncPolicy = &flotillav1.ApplicationSetSyncPolicy{ApplicationsSync: policy}
			}
			p := applicationset.PlanWrites(set, desired, existing, nil)
			want := map[string]string{}
			for op, apps := range map[string][]*flotillav1.Application{"create": p.Create, "update": p.Update, "delete": p.Delete,
				"keep": append(append([]*flotillav1.Application{}, p.HeldUpdates...), p.HeldDeletes...)} {
				for _, a := range apps {
					want[a.Name] = op
				}
			}
			changes, err := planDiff(set, desired, existing, nil)
			require.NoError(t, err)
			got := map[string]string{}
			for _, c := range changes {
				got[c.Name] = c.Op
				if c.Op == "update" || c.Op == "keep" && c.Diff != "" {
					assert.Contains(t, c.Diff, "+", "%s shows what changes", c.Name)
				}
			}
			assert.Equal(t, want, got)
			assert.Equal(t, 1, p.Unchanged, "only 'same' is unchanged")
			if policy == "" || policy == flotillav1.ApplicationsSyncSync {
				assert.Equal(t, map[string]string{"spec": "update", "annotation": "update", "label": "update", "gone": "delete", "new": "create"}, got)
			}
		})
	}
}
