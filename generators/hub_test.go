package generators_test

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestApplicationsAgainstAHub reads MemberClusters from a real apiserver
// and checks that the Applications the engine renders are accepted by the
// real CRD, owned by their set.
func TestApplicationsAgainstAHub(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	for _, mc := range fleet {
		obj := mc.DeepCopy()
		obj.Spec.KubeconfigSecretRef.Name = obj.Name + "-kubeconfig"
		require.NoError(t, env.Client.Create(ctx, obj))
	}
	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "guestbook", Namespace: "default"}}
	set.Spec.Generators = gens(t, `[{clusters: {selector: {matchLabels: {env: prod}}, values: {replicas: "3"}}}]`)
	set.Spec.Template = flotillav1.ApplicationTemplate{
		Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .name }}-guestbook"},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: "https://git.example/deploy.git", Path: "apps/guestbook/{{ .metadata.labels.region }}"},
			Destination: flotillav1.ApplicationDestination{Cluster: "{{ .name }}", Namespace: "guestbook"},
		},
	}
	require.NoError(t, env.Client.Create(ctx, set))

	engine := generators.New(generators.Options{Clusters: generators.HubClusters{Reader: env.Client}})
	apps, err := engine.Applications(ctx, set)
	require.NoError(t, err)
	var names []string
	for _, app := range apps {
		require.NoError(t, env.Client.Create(ctx, app), "the apiserver must accept %s", app.Name)
		names = append(names, app.Name)
	}
	assert.Equal(t, []string{"prod-eu-1-guestbook", "prod-us-1-guestbook"}, names)

	var list flotillav1.ApplicationList
	require.NoError(t, env.Client.List(ctx, &list))
	require.Len(t, list.Items, 2)
	assert.Equal(t, "apps/guestbook/eu", list.Items[0].Spec.Source.Path)
	assert.Equal(t, set.UID, list.Items[0].OwnerReferences[0].UID)
}
