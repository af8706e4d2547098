package hub_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
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

	require.NoError(t, hc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "clusters"}}))
	cluster := &clusterv1.Cluster{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-9", Namespace: "clusters", Labels: map[string]string{"env": "prod", "region": "eu", "tier": "gold", flotillav1.LabelCluster: "forged"}},
		Spec: clusterv1.ClusterSpec{Paused: ptr.To(false)}}
	require.NoError(t, hc.Create(ctx, cluster))
	f.startHub(t, hub.Options{CAPIImport: true, CAPICopyLabels: []string{"env", "region"}})

	admin, err := os.ReadFile(spoke.Kubeconfig(t))
	require.NoError(t, err)
	// Not provisioned yet: no kubeconfig, no MemberCluster.
	time.Sleep(time.Second)
	err = hc.Get(ctx, types.NamespacedName{Name: "prod-eu-9"}, &flotillav1.MemberCluster{})
	require.True(t, apierrors.IsNotFound(err), "imported before its kubeconfig existed: %v", err)

	require.NoError(t, hc.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-9-kubeconfig", Namespace: "clusters", Labels: map[string]string{clusterv1.ClusterNameLabel: "prod-eu-9"}},
		Type:       clusterv1.ClusterSecretType,
		Data:       map[string][]byte{"value": admin}, // CAPI's kubeconfig: cluster-admin
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
	// Enrolled like `flotilla cluster register`: the agent installed there,
	// and the hub keeps a least-privilege token, never CAPI's admin
	// credentials.
	require.NoError(t, spoke.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: "flotilla-agent"}, &appsv1.Deployment{}))
	var hubSecret corev1.Secret
	require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: ns, Name: mc.Spec.KubeconfigSecretRef.Name}, &hubSecret))
	stored, err := clientcmd.Load(hubSecret.Data["value"])
	require.NoError(t, err)
	for name, u := range stored.AuthInfos {
		assert.NotEmpty(t, u.Token, name)
		assert.Empty(t, u.ClientKeyData, "the hub kept an admin client key")
		assert.Empty(t, u.ClientCertificateData, "the hub kept an admin client certificate")
	}
	assert.NotEmpty(t, hubSecret.Annotations[flotillav1.AnnotationTokenExpires])

	// CAPI rotates the cluster's credentials: the hub enrolls again with the
	// new ones, and revokes its previous token once it uses the new one.
	tokens := func() []string {
		var list corev1.SecretList
		require.NoError(t, spoke.Client.List(ctx, &list, client.InNamespace(ns), client.HasLabels{flotillav1.LabelHubToken}))
		var names []string
		for _, s := range list.Items {
			names = append(names, s.Name)
		}
		return names
	}
	first := tokens()
	require.Len(t, first, 1)
	capiSecret := &corev1.Secret{}
	require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: "clusters", Name: "prod-eu-9-kubeconfig"}, capiSecret))
	capiSecret.Data["value"] = spoke.UserKubeconfig(t, "capi-rotated-admin", "system:masters")
	require.NoError(t, hc.Update(ctx, capiSecret))
	eventually(t, 90*time.Second, "a new token, the previous revoked (the CAPI Secret is read every 30s)", func() (bool, string) {
		now := tokens()
		return len(now) == 1 && now[0] != first[0], fmt.Sprint(now)
	})
	eventually(t, 30*time.Second, "still Ready with the new token", func() (bool, string) {
		mc := &flotillav1.MemberCluster{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "prod-eu-9"}, mc))
		ready := condition(mc.Status.Conditions, flotillav1.ConditionReady)
		return ready.Status == metav1.ConditionTrue, ready.Reason + ": " + ready.Message
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
