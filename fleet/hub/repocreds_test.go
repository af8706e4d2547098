package hub_test

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/internal/git"
)

func hubCredential(name, url, password string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{flotillav1.LabelSecretType: git.SecretTypeRepository}},
		StringData: map[string]string{git.SecretKeyURL: url, git.SecretKeyUsername: "ci", git.SecretKeyPassword: password}, Data: map[string][]byte{"unrelated": []byte("x")}}
}

func handMadeApp(name, cluster, repoURL string) *flotillav1.Application {
	return &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: repoURL, Path: "app"},
			Destination: flotillav1.ApplicationDestination{Cluster: cluster, Namespace: "app"}}}
}

// copies is the spoke's repository Secrets by name → password.
func copies(t *testing.T, c client.Client) map[string]string {
	t.Helper()
	var list corev1.SecretList
	require.NoError(t, c.List(t.Context(), &list, client.InNamespace(ns), client.MatchingLabels{flotillav1.LabelSecretType: git.SecretTypeRepository}))
	out := map[string]string{}
	for _, s := range list.Items {
		out[s.Name] = string(s.Data[git.SecretKeyPassword])
		if _, ok := s.Data["unrelated"]; ok {
			out[s.Name] += "+unrelated"
		}
	}
	return out
}

// TestCredentialsReachTheSpokesThatNeedThem: each spoke gets exactly the
// hub credentials its Applications' repoURLs match (longest prefix),
// follows a rotation, loses a copy no Application needs any more, and a
// repository Secret the hub did not write is left alone.
func TestCredentialsReachTheSpokesThatNeedThem(t *testing.T) {
	f := startFleet(t, "spoke-1", "spoke-2")
	ctx := t.Context()
	h := f.hub.Client
	for _, s := range []*corev1.Secret{
		hubCredential("team-a", "https://git.example/team-a", "pass-a1"),
		hubCredential("everything", "https://git.example", "pass-all"),
		hubCredential("registry", "oci://registry.example", "pass-oci"),
	} {
		require.NoError(t, h.Create(ctx, s))
	}
	own := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "spoke-own", Namespace: ns, Labels: map[string]string{flotillav1.LabelSecretType: git.SecretTypeRepository}},
		StringData: map[string]string{git.SecretKeyURL: "https://mine.example", git.SecretKeyPassword: "spoke-pass"}}
	require.NoError(t, f.spokes["spoke-2"].Client.Create(ctx, own))
	stop := f.startHub(t, hub.Options{})
	defer stop()

	require.NoError(t, h.Create(ctx, handMadeApp("a1", "spoke-1", "https://git.example/team-a/deploy.git")))
	require.NoError(t, h.Create(ctx, handMadeApp("b1", "spoke-2", "https://git.example/other/deploy.git")))
	require.NoError(t, h.Create(ctx, handMadeApp("c1", "spoke-2", "oci://registry.example/charts")))
	want := func(spoke string, expected map[string]string) {
		t.Helper()
		eventually(t, 30*time.Second, fmt.Sprintf("%s holds %v", spoke, slices.Sorted(maps.Keys(expected))), func() (bool, string) {
			got := copies(t, f.spokes[spoke].Client)
			return maps.Equal(got, expected), fmt.Sprint(got)
		})
	}
	want("spoke-1", map[string]string{"flotilla-team-a": "pass-a1"})
	want("spoke-2", map[string]string{"flotilla-everything": "pass-all", "flotilla-registry": "pass-oci", "spoke-own": "spoke-pass"})

	// Rotation on the hub reaches the copy.
	sec := &corev1.Secret{}
	require.NoError(t, h.Get(ctx, client.ObjectKey{Namespace: ns, Name: "team-a"}, sec))
	sec.Data[git.SecretKeyPassword] = []byte("pass-a2")
	require.NoError(t, h.Update(ctx, sec))
	want("spoke-1", map[string]string{"flotilla-team-a": "pass-a2"})

	// An Application moves to another repository; one is deleted.
	app := &flotillav1.Application{}
	require.NoError(t, h.Get(ctx, client.ObjectKey{Namespace: "default", Name: "a1"}, app))
	app.Spec.Source.RepoURL = "https://git.example/team-b/deploy.git"
	require.NoError(t, h.Update(ctx, app))
	require.NoError(t, h.Delete(ctx, handMadeApp("c1", "spoke-2", "")))
	want("spoke-1", map[string]string{"flotilla-everything": "pass-all"})
	want("spoke-2", map[string]string{"flotilla-everything": "pass-all", "spoke-own": "spoke-pass"})

	// The hub's credential goes: so does every copy.
	require.NoError(t, h.Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "everything"}}))
	want("spoke-1", map[string]string{})
	want("spoke-2", map[string]string{"spoke-own": "spoke-pass"})
}
