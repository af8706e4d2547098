package hub_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
)

// tenantSet is a list set in namespace team-a for one cluster, deploying
// repo into namespace dest with Project team-a.
func tenantSet(namespace, name, cluster, repo, dest string) *flotillav1.ApplicationSet {
	set := &flotillav1.ApplicationSet{}
	doc := fmt.Sprintf(`
metadata: {name: %s, namespace: %s}
spec:
  generators: [{list: {elements: [{cluster: %s}]}}]
  template:
    metadata: {name: '{{ .cluster }}-web'}
    spec:
      project: team-a
      source: {repoURL: %q, path: web}
      destination: {cluster: '{{ .cluster }}', namespace: %s}
`, name, namespace, cluster, repo, dest)
	if err := yaml.Unmarshal([]byte(doc), set); err != nil {
		panic(err)
	}
	return set
}

// TestProjectsBoundSets: a set whose Applications break their Project (a
// repository outside sourceRepos, a cluster outside the destinations, a
// namespace outside the globs, a namespace the Project does not serve)
// writes nothing and names the Application and the rule, its existing
// Applications untouched; a set in a namespace the hub does not serve is
// ignored; a hand-made Application that breaks its Project is not
// delivered.
func TestProjectsBoundSets(t *testing.T) {
	f := startFleet(t, "spoke-1", "spoke-2")
	ctx := t.Context()
	for _, n := range []string{"team-a", "team-b", "elsewhere"} {
		require.NoError(t, f.hub.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: n}}))
	}
	require.NoError(t, f.hub.Client.Create(ctx, &flotillav1.Project{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Namespace: ns},
		Spec: flotillav1.ProjectSpec{SourceNamespaces: []string{"team-a"}, SourceRepos: []string{"https://git.example/team-a/*"},
			Destinations: []flotillav1.ProjectDestination{{ClusterSelector: metav1.LabelSelector{MatchLabels: map[string]string{"name": "spoke-1"}}, Namespaces: []string{"team-a-*"}}}}}))
	// A Project outside the hub's namespace counts for nothing.
	require.NoError(t, f.hub.Client.Create(ctx, &flotillav1.Project{ObjectMeta: metav1.ObjectMeta{Name: "team-b", Namespace: "team-b"},
		Spec: flotillav1.ProjectSpec{SourceNamespaces: []string{"*"}, SourceRepos: []string{"*"}, Destinations: []flotillav1.ProjectDestination{{Namespaces: []string{"*"}}}}}))
	stop := f.startHub(t, hub.Options{ApplicationSetNamespaces: []string{"default", "team-*"}})
	defer stop()

	eventually(t, 30*time.Second, "the hub creates the default Project", func() (bool, string) {
		p := &flotillav1.Project{}
		err := f.hub.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: flotillav1.DefaultProject}, p)
		return err == nil, fmt.Sprint(err)
	})
	good := tenantSet("team-a", "web", "spoke-1", "https://git.example/team-a/web.git", "team-a-web")
	require.NoError(t, f.hub.Client.Create(ctx, good))
	var before flotillav1.Application
	eventually(t, 30*time.Second, "the allowed set's Application, delivered", func() (bool, string) {
		err := f.hub.Client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "spoke-1-web"}, &before)
		return err == nil && condition(before.Status.Conditions, flotillav1.ConditionDelivered).Status == metav1.ConditionTrue, fmt.Sprintf("%v %+v", err, before.Status.Conditions)
	})
	rules := spokeApps(t, f.spokes["spoke-1"].Client)["team-a.spoke-1-web"].Annotations[flotillav1.AnnotationProjectRules]
	require.Contains(t, rules, `"namespaces":["team-a-*"]`, "the spoke copy carries its Project's rules")

	refused := func(what string, mutate func(*flotillav1.ApplicationSet), rule string, says ...string) {
		t.Helper()
		require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
			set := &flotillav1.ApplicationSet{}
			if err := f.hub.Client.Get(ctx, client.ObjectKeyFromObject(good), set); err != nil {
				return err
			}
			fresh := tenantSet("team-a", "web", "spoke-1", "https://git.example/team-a/web.git", "team-a-web")
			set.Spec = fresh.Spec
			mutate(set)
			return f.hub.Client.Update(ctx, set)
		}))
		eventually(t, 30*time.Second, what+": refused, naming the rule", func() (bool, string) {
			set := &flotillav1.ApplicationSet{}
			require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKeyFromObject(good), set))
			c := condition(set.Status.Conditions, flotillav1.ConditionResourcesUpToDate)
			ok := c.Reason == flotillav1.ReasonProjectViolation && c.ObservedGeneration == set.Generation && strings.Contains(c.Message, "("+rule+")")
			for _, s := range says {
				ok = ok && strings.Contains(c.Message, s)
			}
			return ok, c.Message
		})
		var evs corev1.EventList
		require.NoError(t, f.hub.Client.List(ctx, &evs, client.InNamespace("team-a")))
		found := false
		for _, e := range evs.Items {
			found = found || (e.Reason == flotillav1.ReasonProjectViolation && strings.Contains(e.Message, "("+rule+")"))
		}
		require.True(t, found, "%s: an Event names the rule", what)
		after := &flotillav1.Application{}
		require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "spoke-1-web"}, after))
		require.Equal(t, before.ResourceVersion, after.ResourceVersion, "%s: the existing Application is untouched", what)
		apps := &flotillav1.ApplicationList{}
		require.NoError(t, f.hub.Client.List(ctx, apps, client.InNamespace("team-a")))
		require.Len(t, apps.Items, 1, "%s: nothing new is written", what)
	}
	refused("a repository outside sourceRepos", func(s *flotillav1.ApplicationSet) {
		s.Spec.Template.Spec.Source.RepoURL = "https://git.example/team-b/web.git"
	},
		"sourceRepos", "Application spoke-1-web deploys from https://git.example/team-b/web.git")
	refused("a cluster outside the destinations", func(s *flotillav1.ApplicationSet) {
		s.Spec.Generators[0].List.Elements[0].Raw = []byte(`{"cluster":"spoke-2"}`)
	}, "destinations", "cluster spoke-2")
	refused("a namespace outside the globs", func(s *flotillav1.ApplicationSet) { s.Spec.Template.Spec.Destination.Namespace = "team-b-web" },
		"destinations", "namespace team-b-web")
	refused("a Project that does not exist", func(s *flotillav1.ApplicationSet) { s.Spec.Template.Spec.Project = "team-b" }, "project", `no Project "team-b"`)

	// A namespace the Project does not serve.
	other := tenantSet("team-b", "web", "spoke-1", "https://git.example/team-a/web.git", "team-a-web")
	require.NoError(t, f.hub.Client.Create(ctx, other))
	eventually(t, 30*time.Second, "team-b may not use team-a's Project", func() (bool, string) {
		set := &flotillav1.ApplicationSet{}
		require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKeyFromObject(other), set))
		c := condition(set.Status.Conditions, flotillav1.ConditionResourcesUpToDate)
		return c.Reason == flotillav1.ReasonProjectViolation && strings.Contains(c.Message, "namespace team-b may not use it") && strings.Contains(c.Message, "(sourceNamespaces)"), c.Message
	})

	// A namespace the hub does not serve: the set is not even looked at.
	ignored := tenantSet("elsewhere", "web", "spoke-1", "https://git.example/team-a/web.git", "team-a-web")
	ignored.Spec.Template.Spec.Project = ""
	require.NoError(t, f.hub.Client.Create(ctx, ignored))

	// A hand-made Application breaking its Project is not delivered.
	hand := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: "by-hand", Namespace: "team-a"}, Spec: flotillav1.ApplicationSpec{Project: "team-a",
		Source:      flotillav1.ApplicationSource{RepoURL: "https://git.example/team-a/web.git", Path: "web"},
		Destination: flotillav1.ApplicationDestination{Cluster: "spoke-1", Namespace: "kube-system"}}}
	require.NoError(t, f.hub.Client.Create(ctx, hand))
	eventually(t, 30*time.Second, "the hand-made Application is refused", func() (bool, string) {
		a := &flotillav1.Application{}
		require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKeyFromObject(hand), a))
		c := condition(a.Status.Conditions, flotillav1.ConditionDelivered)
		return c.Reason == flotillav1.ReasonProjectViolation && strings.Contains(c.Message, "namespace kube-system"), c.Message
	})
	_, onSpoke := spokeApps(t, f.spokes["spoke-1"].Client)["team-a.by-hand"]
	require.False(t, onSpoke, "a refused Application never reaches the spoke")
	set := &flotillav1.ApplicationSet{}
	require.NoError(t, f.hub.Client.Get(ctx, client.ObjectKeyFromObject(ignored), set))
	require.Empty(t, set.Status.Conditions, "a set in a namespace the hub does not serve is left alone")
	apps := &flotillav1.ApplicationList{}
	require.NoError(t, f.hub.Client.List(ctx, apps, client.InNamespace("elsewhere")))
	require.Empty(t, apps.Items)
}
