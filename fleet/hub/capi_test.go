package hub_test

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestClusterAPIImport: a CAPI Cluster with a <name>-kubeconfig Secret
// becomes a Ready MemberCluster with its labels, receives the apps its
// labels select, and leaves the fleet when the Cluster is deleted.
func TestClusterAPIImport(t *testing.T) {
	f := startFleetWith(t, []testenv.Option{testenv.WithCRDPaths(filepath.Join("capi", "testdata", "crds"))}, "workload")
	ctx := t.Context()
	spoke := f.spokes["workload"]
	require.NoError(t, clusterv1.AddToScheme(f.hub.Scheme))
	hc, err := client.New(f.hub.Config, client.Options{Scheme: f.hub.Scheme})
	require.NoError(t, err)

	require.NoError(t, spoke.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	role, binding := spokes.HubRBAC(ns, rbacv1.Subject{Kind: "User", Name: "flotilla-hub", APIGroup: "rbac.authorization.k8s.io"})
	require.NoError(t, spoke.Client.Create(ctx, role))
	require.NoError(t, spoke.Client.Create(ctx, binding))

	require.NoError(t, hc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "clusters"}}))
	cluster := &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-9", Namespace: "clusters", Labels: map[string]string{"env": "prod", "region": "eu", "tier": "gold", flotillav1.LabelCluster: "forged"}},
		Spec: clusterv1.ClusterSpec{Paused: ptr.To(false)}}
	require.NoError(t, hc.Create(ctx, cluster))
	f.startHub(t, hub.Options{CAPIImport: true, CAPICopyLabels: []string{"env", "region"}})

	// Not provisioned yet: no kubeconfig, no MemberCluster.
	time.Sleep(time.Second)
	err = hc.Get(ctx, types.NamespacedName{Name: "prod-eu-9"}, &flotillav1.MemberCluster{})
	require.True(t, apierrors.IsNotFound(err), "imported before its kubeconfig existed: %v", err)

	require.NoError(t, hc.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-9-kubeconfig", Namespace: "clusters", Labels: map[string]string{clusterv1.ClusterNameLabel: "prod-eu-9"}},
		Type:       clusterv1.ClusterSecretType,
		Data:       map[string][]byte{"value": spoke.UserKubeconfig(t, "flotilla-hub")},
	}))
	require.NoError(t, hc.Create(ctx, appSet("guestbook", "web")))

	eventually(t, 60*time.Second, "imported and Ready", func() (bool, string) {
		mc := &flotillav1.MemberCluster{}
		if err := hc.Get(ctx, types.NamespacedName{Name: "prod-eu-9"}, mc); err != nil {
			return false, err.Error()
		}
		ready := condition(mc.Status.Conditions, flotillav1.ConditionReady)
		return ready.Status == metav1.ConditionTrue, ready.Reason + ": " + ready.Message
	})
	mc := &flotillav1.MemberCluster{}
	require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "prod-eu-9"}, mc))
	assert.Equal(t, "prod", mc.Labels["env"])
	assert.Equal(t, "eu", mc.Labels["region"])
	assert.NotContains(t, mc.Labels, "tier", "only the labels the hub copies")
	assert.NotContains(t, mc.Labels, flotillav1.LabelCluster, "never Flotilla's own")
	assert.Equal(t, "clusters.prod-eu-9", mc.Labels[flotillav1.LabelCAPICluster])
	assert.Equal(t, "clusters/prod-eu-9", mc.Annotations[flotillav1.AnnotationCAPICluster])

	eventually(t, 30*time.Second, "app delivered to the imported cluster", func() (bool, string) {
		return len(spokeApps(t, spoke.Client)) == 1, ""
	})

	require.NoError(t, hc.Delete(ctx, cluster))
	eventually(t, 30*time.Second, "MemberCluster removed with its Cluster", func() (bool, string) {
		err := hc.Get(ctx, types.NamespacedName{Name: "prod-eu-9"}, &flotillav1.MemberCluster{})
		var secrets corev1.SecretList
		require.NoError(t, hc.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{flotillav1.LabelCAPICluster: "clusters.prod-eu-9"}))
		return apierrors.IsNotFound(err) && len(secrets.Items) == 0, ""
	})
}

// TestClusterAPIImportIsOffByDefault: with the CAPI CRD served but
// --cluster-api-import off (the chart's default), a Cluster with its
// kubeconfig Secret is not imported.
func TestClusterAPIImportIsOffByDefault(t *testing.T) {
	f := startFleetWith(t, []testenv.Option{testenv.WithCRDPaths(filepath.Join("capi", "testdata", "crds"))})
	ctx := t.Context()
	require.NoError(t, clusterv1.AddToScheme(f.hub.Scheme))
	hc, err := client.New(f.hub.Config, client.Options{Scheme: f.hub.Scheme})
	require.NoError(t, err)
	require.NoError(t, hc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "clusters"}}))
	require.NoError(t, hc.Create(ctx, &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-9", Namespace: "clusters"}, Spec: clusterv1.ClusterSpec{Paused: ptr.To(false)}}))
	require.NoError(t, hc.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-9-kubeconfig", Namespace: "clusters", Labels: map[string]string{clusterv1.ClusterNameLabel: "prod-eu-9"}},
		Type:       clusterv1.ClusterSecretType,
		Data:       map[string][]byte{"value": []byte("apiVersion: v1\nkind: Config\n")},
	}))
	f.startHub(t, hub.Options{})
	// The same wait the import takes when on (TestClusterAPIImport: well
	// under a second once the Secret exists).
	time.Sleep(3 * time.Second)
	var mcs flotillav1.MemberClusterList
	require.NoError(t, hc.List(ctx, &mcs))
	require.Empty(t, mcs.Items, "imported with --cluster-api-import off")
}
