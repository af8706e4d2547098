package git_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
)

// TestPrivateHTTPS: a repository over HTTPS (a test CA) with basic auth is
// read with the matching credential and its CA bundle; without the CA,
// with a wrong password or with none, the error says what to fix and
// never carries the password.
func TestPrivateHTTPS(t *testing.T) {
	srv := gittest.NewTLS(t)
	repo := srv.Repo(t, "private")
	sha := repo.MustCommit(t, map[string]string{"app/cm.yaml": "kind: ConfigMap\n"}, "one")
	srv.RequireBasicAuth("ci", "s3cret-token")
	prefix := strings.TrimSuffix(srv.URL, "/")
	good := git.Credential{URLPrefix: prefix, Username: "ci", Password: "s3cret-token", CABundle: string(srv.CAPEM)}

	got, err := newCache(t, git.Options{Credentials: git.StaticCredentials{good}, Timeout: 20 * time.Second}).Resolve(t.Context(), repo.URL, "main")
	require.NoError(t, err)
	assert.Equal(t, sha, got)

	cases := []struct {
		name  string
		creds git.StaticCredentials
		says  string
	}{
		{"no CA bundle", git.StaticCredentials{{URLPrefix: prefix, Username: "ci", Password: "s3cret-token"}}, "certificate"},
		{"wrong password", git.StaticCredentials{{URLPrefix: prefix, Username: "ci", Password: "wrong-pass", CABundle: string(srv.CAPEM)}}, "authentication required"},
		{"credential for another path only", git.StaticCredentials{{URLPrefix: prefix + "/other", Username: "ci", Password: "s3cret-token", CABundle: string(srv.CAPEM)}}, "certificate"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := newCache(t, git.Options{Credentials: tc.creds, Timeout: 20 * time.Second}).Resolve(t.Context(), repo.URL, "main")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.says)
			assert.NotContains(t, err.Error(), "s3cret-token")
			assert.NotContains(t, err.Error(), "wrong-pass")
		})
	}
	require.NoError(t, git.CheckCredential(t.Context(), repo.URL, good, true, 10*time.Second))
	bad := good
	bad.Password = "wrong-pass"
	err = git.CheckCredential(t.Context(), repo.URL, bad, true, 10*time.Second)
	require.ErrorContains(t, err, "refused these credentials")
	assert.NotContains(t, err.Error(), "wrong-pass")
}

// TestPrivateSSH: a real SSH server running git-upload-pack; key auth with
// a pinned host key works, an unknown host key and a key it does not
// accept are refused.
func TestPrivateSSH(t *testing.T) {
	srv := gittest.New(t)
	repo := srv.Repo(t, "private")
	sha := repo.MustCommit(t, map[string]string{"app/cm.yaml": "kind: ConfigMap\n"}, "one")
	ssh := srv.ServeSSH(t)
	url := ssh.URL(repo)
	prefix := "ssh://git@" + ssh.Addr
	good := git.Credential{URLPrefix: prefix, SSHPrivateKey: ssh.ClientKey, SSHKnownHosts: ssh.KnownHosts}

	got, err := newCache(t, git.Options{Credentials: git.StaticCredentials{good}, Timeout: 20 * time.Second}).Resolve(t.Context(), url, "main")
	require.NoError(t, err)
	assert.Equal(t, sha, got)
	snap, err := newCache(t, git.Options{Credentials: git.StaticCredentials{good}, Timeout: 20 * time.Second}).Snapshot(t.Context(), url, "main")
	require.NoError(t, err)
	assert.Contains(t, snap.Files(), "app/cm.yaml")

	unknownHost := good
	unknownHost.SSHKnownHosts = ssh.OtherKnownHosts
	_, err = newCache(t, git.Options{Credentials: git.StaticCredentials{unknownHost}, Timeout: 20 * time.Second}).Resolve(t.Context(), url, "main")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "is not in sshKnownHosts")

	otherSSH := srv.ServeSSH(t) // a second server: its client key is not the first one's
	wrongKey := good
	wrongKey.SSHPrivateKey = otherSSH.ClientKey
	_, err = newCache(t, git.Options{Credentials: git.StaticCredentials{wrongKey}, Timeout: 20 * time.Second}).Resolve(t.Context(), url, "main")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "unable to authenticate")
	assert.NotContains(t, err.Error(), "PRIVATE KEY")
}
