package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/helmtest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// runIn runs the CLI with stdin.
func runIn(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(t.Context(), args, strings.NewReader(stdin), &out, &errOut)
	return out.String(), errOut.String(), code
}

// TestRepoCredentials: `flotilla repo add` checks credentials against a
// real Git server before storing them on the hub (wrong ones are refused,
// never echoed, nothing stored); list never shows secrets; remove deletes.
func TestRepoCredentials(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	require.NoError(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.SystemNamespace}}))
	kc := env.Kubeconfig(t)
	srv := gittest.New(t)
	repo := srv.Repo(t, "private")
	repo.MustCommit(t, map[string]string{"a.txt": "a"}, "first")
	srv.RequireBasicAuth("robot", "s3cret-token")
	stored := func() []corev1.Secret {
		var list corev1.SecretList
		require.NoError(t, env.Client.List(ctx, &list, client.InNamespace(flotillav1.SystemNamespace), client.MatchingLabels{flotillav1.LabelSecretType: "repository"}))
		return list.Items
	}

	out, errOut, code := runIn(t, "wrong-password\n", "repo", "add", repo.URL, "--username", "robot", "--password-stdin", "--allow-loopback", "--kubeconfig", kc)
	require.Equal(t, 1, code, out)
	assert.Contains(t, errOut, "refused these credentials")
	assert.Contains(t, errOut, "nothing was stored")
	assert.NotContains(t, out+errOut, "wrong-password")
	assert.Empty(t, stored())

	_, errOut, code = runIn(t, "", "repo", "add", repo.URL, "--username", "robot", "--kubeconfig", kc)
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "give credentials")

	out, errOut, code = runIn(t, "s3cret-token\n", "repo", "add", repo.URL, "--prefix", srv.URL, "--username", "robot", "--password-stdin", "--allow-loopback", "--kubeconfig", kc)
	require.Equal(t, 0, code, errOut)
	assert.Contains(t, out, "Stored https credentials for "+srv.URL)
	assert.NotContains(t, out+errOut, "s3cret-token")
	secrets := stored()
	require.Len(t, secrets, 1)
	creds := git.CredentialsFromSecrets(secrets)
	require.Len(t, creds, 1)
	assert.Equal(t, "s3cret-token", creds[0].Password, "the hub reads what was stored")

	list := mustRun(t, "repo", "list", "--kubeconfig", kc)
	assert.Contains(t, list, srv.URL)
	assert.Contains(t, list, "robot")
	assert.NotContains(t, list+mustRun(t, "repo", "list", "-o", "json", "--kubeconfig", kc), "s3cret-token")

	assert.Contains(t, mustRun(t, "repo", "remove", srv.URL, "--kubeconfig", kc), "Removed the credentials for "+srv.URL)
	assert.Empty(t, stored())
	mustFail(t, "no credentials stored for", "repo", "remove", srv.URL, "--kubeconfig", kc)
}

// TestRepoAddHelmOCIAndPrivateCA: Helm repositories are checked through
// their index.yaml, registries through their auth flow, a Git server with
// a private CA with --ca-file; a wrong password is refused and not stored.
func TestRepoAddHelmOCIAndPrivateCA(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	require.NoError(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.SystemNamespace}}))
	kc := env.Kubeconfig(t)
	charts := helmtest.NewRepo(t)
	charts.RequireBasicAuth("robot", "helm-s3cret")
	reg := helmtest.NewRegistry(t, "robot", "oci-s3cret")
	tlsGit := gittest.NewTLS(t)
	repo := tlsGit.Repo(t, "private")
	repo.MustCommit(t, map[string]string{"a.txt": "a"}, "first")
	tlsGit.RequireBasicAuth("robot", "git-s3cret")
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(caFile, tlsGit.CAPEM, 0o600))

	for _, tc := range []struct {
		url, password string
		args          []string
	}{
		{charts.URL, "helm-s3cret", []string{"--type", "helm"}},
		{reg.URL + "/charts", "oci-s3cret", nil},
		{repo.URL, "git-s3cret", []string{"--ca-file", caFile}},
	} {
		args := append([]string{"repo", "add", tc.url, "--username", "robot", "--password-stdin", "--allow-loopback", "--kubeconfig", kc}, tc.args...)
		out, errOut, code := runIn(t, "wrong-pass\n", args...)
		require.Equal(t, 1, code, tc.url+": "+out)
		assert.Contains(t, errOut, "refused", tc.url)
		assert.Contains(t, errOut, "nothing was stored", tc.url)
		assert.NotContains(t, out+errOut, "wrong-pass")
		out, errOut, code = runIn(t, tc.password+"\n", args...)
		require.Equal(t, 0, code, tc.url+": "+errOut)
		assert.NotContains(t, out+errOut, tc.password)
	}
	_, errOut, code := runIn(t, "git-s3cret\n", "repo", "add", repo.URL, "--prefix", tlsGit.URL+"/private", "--username", "robot", "--password-stdin", "--allow-loopback", "--kubeconfig", kc)
	require.Equal(t, 1, code)
	assert.Contains(t, errOut, "certificate", "without --ca-file the private CA is not trusted")

	list := mustRun(t, "repo", "list", "--kubeconfig", kc)
	for _, want := range []string{charts.URL, "helm", reg.URL + "/charts", "oci", repo.URL, "git (https)"} {
		assert.Contains(t, list, want)
	}
	var secrets corev1.SecretList
	require.NoError(t, env.Client.List(ctx, &secrets, client.InNamespace(flotillav1.SystemNamespace)))
	creds := git.CredentialsFromSecrets(secrets.Items)
	c, err := creds.Credential(ctx, repo.URL)
	require.NoError(t, err)
	require.NotNil(t, c)
	assert.Equal(t, string(tlsGit.CAPEM), c.CABundle)
}
