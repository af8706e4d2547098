package hub_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestRenamedDirectoryHoldsDeletions: a rename that makes a git directories
// generator match nothing would delete every Application of the set; the
// hub holds the deletions with a condition that says why and how to
// confirm, and carries them out once the set is annotated.
func TestRenamedDirectoryHoldsDeletions(t *testing.T) {
	f := startFleet(t, "east") // a registered cluster: deleting a gone cluster's Applications is never held
	ctx := t.Context()
	hc := f.hub.Client
	repo := gittest.New(t).Repo(t, "deploy")
	repo.MustCommit(t, map[string]string{"apps/web/kustomization.yaml": "resources: []\n", "apps/api/kustomization.yaml": "resources: []\n"}, "two apps")
	stop := f.startHub(t, hub.Options{GitPollInterval: time.Second})
	defer stop()

	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "dirs", Namespace: "default"}}
	require.NoError(t, yaml.Unmarshal([]byte(`[{git: {repoURL: `+repo.URL+`, revision: main, directories: [{path: 'apps/*'}]}}]`), &set.Spec.Generators))
	set.Spec.Template = flotillav1.ApplicationTemplate{
		Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .path.basename }}"},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: repo.URL, TargetRevision: "main", Path: "{{ .path.path }}"},
			Destination: flotillav1.ApplicationDestination{Cluster: "east", Namespace: "{{ .path.basename }}"},
		},
	}
	require.NoError(t, hc.Create(ctx, set))
	testenv.Eventually(t, 30*time.Second, "two Applications", func() (bool, string) {
		return len(hubApps(t, hc, "dirs")) == 2, strings.Join(keys(hubApps(t, hc, "dirs")), ",")
	})

	repo.MustCommit(t, map[string]string{"apps/web/kustomization.yaml": gittest.Delete, "apps/api/kustomization.yaml": gittest.Delete,
		"services/web/kustomization.yaml": "resources: []\n", "services/api/kustomization.yaml": "resources: []\n"}, "rename apps/ to services/")
	testenv.Eventually(t, 30*time.Second, "deletions held with a reason", func() (bool, string) {
		require.NoError(t, hc.Get(ctx, key("dirs"), set))
		c := condition(set.Status.Conditions, flotillav1.ConditionResourcesUpToDate)
		ready := condition(set.Status.Conditions, flotillav1.ConditionStalled)
		return c.Reason == flotillav1.ReasonDeletionsHeld && strings.Contains(c.Message, "annotate the set flotilla.dev/allow-deletes=true") &&
			ready.Status == metav1.ConditionTrue, c.Reason + ": " + c.Message
	})
	time.Sleep(2 * time.Second) // two more Git polls: still nothing deleted
	assert.Len(t, hubApps(t, hc, "dirs"), 2, "nothing is deleted while held")

	updateSet(t, hc, "dirs", func(s *flotillav1.ApplicationSet) {
		if s.Annotations == nil {
			s.Annotations = map[string]string{}
		}
		s.Annotations[flotillav1.AnnotationAllowDeletes] = "true"
	})
	testenv.Eventually(t, 30*time.Second, "confirmed deletions carried out, the confirmation spent", func() (bool, string) {
		require.NoError(t, hc.Get(ctx, key("dirs"), set))
		_, confirmed := set.Annotations[flotillav1.AnnotationAllowDeletes]
		return len(hubApps(t, hc, "dirs")) == 0 && !confirmed, strings.Join(keys(hubApps(t, hc, "dirs")), ",")
	})
}
