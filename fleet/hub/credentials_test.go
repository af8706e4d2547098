package hub_test

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/delivery"
)

const execKubeconfig = `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: ["-c", "echo super-secret-exec-arg"]}}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`

// TestInvalidCredentials: each broken kubeconfig Secret yields
// CredentialsValid=False with a reason and a message holding no secret.
func TestInvalidCredentials(t *testing.T) {
	f := startFleet(t, "good")
	ctx := t.Context()
	hc := f.hub.Client

	good := f.spokes["good"].UserKubeconfig(t, "flotilla-hub")
	cfg, err := clientcmd.Load(good)
	require.NoError(t, err)
	for _, c := range cfg.Clusters {
		c.CertificateAuthorityData = f.hub.Config.CAData // another apiserver's CA
	}
	wrongCA, err := clientcmd.Write(*cfg)
	require.NoError(t, err)
	var secrets []string
	for _, u := range cfg.AuthInfos {
		secrets = append(secrets, base64.StdEncoding.EncodeToString(u.ClientKeyData)[:40], string(u.ClientKeyData[:40]))
	}

	cases := []struct {
		name, reason string
		data         map[string][]byte
		noSecret     bool
	}{
		{name: "garbage", reason: "InvalidKubeconfig", data: map[string][]byte{"value": []byte("not: [a kubeconfig super-secret-garbage")}},
		{name: "missing-key", reason: "SecretKeyMissing", data: map[string][]byte{"other": good}},
		{name: "exec-plugin", reason: "ExecCredentialsRefused", data: map[string][]byte{"value": []byte(execKubeconfig)}},
		{name: "wrong-ca", reason: "TLSVerificationFailed", data: map[string][]byte{"value": wrongCA}},
		{name: "no-secret", reason: "SecretNotFound"},
	}
	for _, tc := range cases {
		if tc.data != nil {
			require.NoError(t, hc.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: tc.name + "-kubeconfig", Namespace: ns}, Data: tc.data}))
		}
		require.NoError(t, hc.Create(ctx, &flotillav1.MemberCluster{
			ObjectMeta: metav1.ObjectMeta{Name: tc.name},
			Spec:       flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: tc.name + "-kubeconfig"}},
		}))
	}
	f.startHub(t, hub.Options{})

	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var mc flotillav1.MemberCluster
			eventually(t, 30*time.Second, tc.reason, func() (bool, string) {
				require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: tc.name}, &mc))
				c := condition(mc.Status.Conditions, flotillav1.ConditionCredentialsValid)
				return c.Status == metav1.ConditionFalse && c.Reason == tc.reason, c.Reason + ": " + c.Message
			})
			assert.Equal(t, metav1.ConditionFalse, condition(mc.Status.Conditions, flotillav1.ConditionReady).Status)
			for _, c := range mc.Status.Conditions {
				for _, s := range append(secrets, "super-secret") {
					assert.NotContains(t, c.Message, s, "condition %s leaks secret material", c.Type)
				}
			}
			var events corev1.EventList
			require.NoError(t, hc.List(ctx, &events))
			for _, e := range events.Items {
				for _, s := range append(secrets, "super-secret") {
					assert.NotContains(t, e.Message, s, "event leaks secret material")
				}
			}
		})
	}
	t.Run("fixing the Secret heals the cluster", func(t *testing.T) {
		secret := &corev1.Secret{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: ns, Name: "wrong-ca-kubeconfig"}, secret))
		secret.Data["value"] = good
		require.NoError(t, hc.Update(ctx, secret))
		eventually(t, 30*time.Second, "wrong-ca Ready", func() (bool, string) {
			var mc flotillav1.MemberCluster
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "wrong-ca"}, &mc))
			c := condition(mc.Status.Conditions, flotillav1.ConditionReady)
			return c.Status == metav1.ConditionTrue, c.Message
		})
	})
}

// TestPausedCluster: a paused cluster receives nothing new and loses nothing.
func TestPausedCluster(t *testing.T) {
	f := startFleet(t, "east")
	ctx := t.Context()
	hc := f.hub.Client
	spoke := f.spokes["east"].Client
	f.startHub(t, hub.Options{})

	require.NoError(t, hc.Create(ctx, appSet("guestbook", "web")))
	eventually(t, 30*time.Second, "web delivered", func() (bool, string) {
		return len(spokeApps(t, spoke)) == 1, ""
	})
	setPaused(t, hc, "east", true)
	time.Sleep(500 * time.Millisecond)
	updateSet(t, hc, "guestbook", func(s *flotillav1.ApplicationSet) {
		s.Spec.Generators = appSet("guestbook", "api").Spec.Generators
		s.Annotations = map[string]string{flotillav1.AnnotationAllowDeletes: "true"} // web → api deletes all of the set's Applications: confirmed
	})
	eventually(t, 30*time.Second, "api reported paused", func() (bool, string) {
		app := &flotillav1.Application{}
		if err := hc.Get(ctx, key("east-api"), app); err != nil {
			return false, err.Error()
		}
		c := condition(app.Status.Conditions, flotillav1.ConditionDelivered)
		return c.Reason == "ClusterPaused", c.Reason
	})
	time.Sleep(2 * time.Second)
	apps := spokeApps(t, spoke)
	assert.Equal(t, []string{delivery.SpokeName("default", "east-web")}, keys(apps), "paused: nothing new arrives and nothing is removed")

	setPaused(t, hc, "east", false)
	eventually(t, 30*time.Second, "api delivered, web removed", func() (bool, string) {
		apps := spokeApps(t, spoke)
		return len(apps) == 1 && apps[delivery.SpokeName("default", "east-api")].Name != "", strings.Join(keys(apps), ",")
	})
}

func setPaused(t *testing.T, c client.Client, name string, paused bool) {
	t.Helper()
	mc := &flotillav1.MemberCluster{}
	require.NoError(t, c.Get(t.Context(), types.NamespacedName{Name: name}, mc))
	patch := client.MergeFrom(mc.DeepCopy())
	mc.Spec.Paused = paused
	require.NoError(t, c.Patch(t.Context(), mc, patch))
}
