package git

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCredentialsGoOnlyToTheirHost: credentials match on scheme, host and
// port exactly and on whole path segments, so a look-alike URL never
// receives them.
func TestCredentialsGoOnlyToTheirHost(t *testing.T) {
	creds := StaticCredentials{
		{URLPrefix: "https://git.example.com/org", Password: "org-token"},
		{URLPrefix: "https://git.example.com/org/special.git", Password: "special-token"},
		{URLPrefix: "ssh://git@git.example.com/ops", SSHPrivateKey: "key"},
		{URLPrefix: "https://user:secret@other.example.com/", Password: "never"}, // userinfo in a prefix: matches nothing
	}
	cases := []struct {
		repoURL, want string
	}{
		{"https://git.example.com/org/app.git", "org-token"},
		{"https://GIT.example.com/org/app", "org-token"},
		{"https://git.example.com:443/org/app.git", "org-token"},
		{"https://git.example.com/org/special.git", "special-token"},
		{"https://git.example.com/org/special", "special-token"},
		{"https://git.example.com/org/sub/../app.git", "org-token"},
		{"https://git.example.com/organization/app.git", ""},     // not a segment boundary
		{"https://git.example.com.evil.example/org/app.git", ""}, // host suffix
		{"https://git.example.com:8443/org/app.git", ""},         // another port
		{"http://git.example.com/org/app.git", ""},               // another scheme
		{"http://git.example.com@evil.example/org/x.git", ""},    // the trusted host as userinfo
		{"https://evil.example/git.example.com/org/app.git", ""},
		{"git@git.example.com:ops/app.git", "ssh"},
		{"ssh://git@git.example.com:22/ops/app.git", "ssh"},
		{"git@git.example.com:org/app.git", ""},
		{"https://other.example.com/x.git", ""},
	}
	for _, tc := range cases {
		t.Run(tc.repoURL, func(t *testing.T) {
			c, err := creds.Credential(context.Background(), tc.repoURL)
			require.NoError(t, err)
			got := ""
			if c != nil {
				got = c.Password
				if c.SSHPrivateKey != "" {
					got = "ssh"
				}
			}
			assert.Equal(t, tc.want, got)
		})
	}
}

func TestValidateURLRefusesUserinfo(t *testing.T) {
	for _, u := range []string{
		"http://git.example.com@evil.example/x.git",
		"https://user:token@git.example.com/x.git",
		"https://token@git.example.com/x.git",
		"ssh://git:password@git.example.com/x.git",
		"file:///etc/passwd",
		"/srv/repo.git",
		"",
	} {
		err := ValidateURL(u)
		require.Error(t, err, u)
		assert.NotContains(t, err.Error(), "token", "no secret in the error")
		assert.NotContains(t, err.Error(), "password")
	}
	for _, u := range []string{"https://git.example.com/x.git", "http://10.0.0.1:8080/x.git", "ssh://git@git.example.com/x.git", "git@git.example.com:org/x.git", "git://git.example.com/x.git"} {
		assert.NoError(t, ValidateURL(u), u)
	}
	assert.Equal(t, "https://git.example.com/x.git", RedactURL("https://user:token@git.example.com/x.git"))
}

// TestValidateURLRefusesLocalTargets: link-local and metadata addresses are
// never repositories; loopback only when allowed (local test servers).
func TestValidateURLRefusesLocalTargets(t *testing.T) {
	for _, u := range []string{"http://169.254.169.254/latest/meta-data.git", "http://[fd00:ec2::254]/x.git", "http://metadata.google.internal/x.git",
		"http://[fe80::1]/x.git", "http://0.0.0.0/x.git", "http://100.100.100.200/x.git", "git@169.254.169.254:x.git"} {
		assert.Error(t, validateURL(u, true), u)
	}
	for _, u := range []string{"http://127.0.0.1:8080/x.git", "http://localhost/x.git", "http://[::1]/x.git"} {
		assert.ErrorContains(t, validateURL(u, false), "loopback repositories are refused", u)
		assert.NoError(t, validateURL(u, true), u)
	}
}
