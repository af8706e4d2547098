package git

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"github.com/go-git/go-git/v5/storage/memory"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Credential is how to authenticate to repositories whose URL starts with
// URLPrefix. Its String never prints a secret.
type Credential struct {
	URLPrefix string
	// HTTPS basic auth; a token goes in Password (Username defaults to "git").
	Username string
	Password string
	// SSHPrivateKey is a PEM private key for ssh:// and scp-like URLs.
	SSHPrivateKey string
	// SSHKnownHosts pins host keys; empty uses the user's known_hosts.
	SSHKnownHosts string
	// CABundle (PEM) is trusted, besides the system's roots, for HTTPS
	// servers under the prefix (a private Git server, Helm repository or
	// registry).
	CABundle string
}

// String describes the credential without its secrets.
func (c Credential) String() string {
	kind := "https"
	if c.SSHPrivateKey != "" {
		kind = "ssh"
	}
	return fmt.Sprintf("%s credentials for %s", kind, c.URLPrefix)
}

// CredentialSource finds the credential for a repository URL, or nil.
type CredentialSource interface {
	Credential(ctx context.Context, repoURL string) (*Credential, error)
}

// StaticCredentials matches the most specific URLPrefix.
type StaticCredentials []Credential

var _ CredentialSource = StaticCredentials(nil)

// Credential returns the credential whose URL prefix covers repoURL (same
// scheme, host and port; path prefix on segment boundaries), the one with
// the longest path when several do. A prefix that does not parse, or that
// carries user information, matches nothing.
func (s StaticCredentials) Credential(_ context.Context, repoURL string) (*Credential, error) {
	prefixes := make([]string, len(s))
	for i, c := range s {
		prefixes[i] = c.URLPrefix
	}
	if i := BestMatch(prefixes, repoURL); i >= 0 {
		return &s[i], nil
	}
	return nil, nil
}

// BestMatch is the index of the URL prefix that covers repoURL (same
// scheme, host and port; path prefix on segment boundaries) with the
// longest path, or -1. A prefix or repoURL that does not parse, or that
// carries user information, matches nothing.
func BestMatch(prefixes []string, repoURL string) int {
	repo, err := parseLocation(repoURL)
	if err != nil {
		return -1
	}
	best, bestLen := -1, -1
	for i, p := range prefixes {
		l, err := parseLocation(p)
		if err != nil || !l.covers(repo) {
			continue
		}
		if len(l.segments) > bestLen {
			best, bestLen = i, len(l.segments)
		}
	}
	return best
}

// Secret keys read by CredentialsFromSecrets.
const (
	SecretKeyURL           = "url"
	SecretKeyUsername      = "username"
	SecretKeyPassword      = "password"
	SecretKeyToken         = "token"
	SecretKeySSHPrivateKey = "sshPrivateKey"
	SecretKeySSHKnownHosts = "sshKnownHosts"
	SecretKeyCABundle      = "caBundle"
	// SecretKeyType says what the URL is, for people: git, helm or oci.
	SecretKeyType = "type"
)

// SecretTypeRepository is the value of flotilla.dev/secret-type on a
// repository credential Secret (on the hub, and the copies on spokes).
const SecretTypeRepository = "repository"

// SecretCredentials reads the repository credential Secrets of one
// namespace (through a cache) at every lookup, so a rotated Secret is used
// at the next fetch.
type SecretCredentials struct {
	Reader    client.Reader
	Namespace string
}

var _ CredentialSource = SecretCredentials{}

// Credential implements CredentialSource.
func (s SecretCredentials) Credential(ctx context.Context, repoURL string) (*Credential, error) {
	var list corev1.SecretList
	if err := s.Reader.List(ctx, &list, client.InNamespace(s.Namespace), client.MatchingLabels{"flotilla.dev/secret-type": SecretTypeRepository}); err != nil {
		return nil, err
	}
	return CredentialsFromSecrets(list.Items).Credential(ctx, repoURL)
}

// CredentialsFromSecrets reads repository credential Secrets: data key url
// (a URL prefix) plus username/password, token, or sshPrivateKey. Secrets
// without a url are skipped. Results are ordered by prefix.
func CredentialsFromSecrets(secrets []corev1.Secret) StaticCredentials {
	var out StaticCredentials
	for _, s := range secrets {
		url := string(s.Data[SecretKeyURL])
		if url == "" {
			continue
		}
		c := Credential{
			URLPrefix:     url,
			Username:      string(s.Data[SecretKeyUsername]),
			Password:      string(s.Data[SecretKeyPassword]),
			SSHPrivateKey: string(s.Data[SecretKeySSHPrivateKey]),
			SSHKnownHosts: string(s.Data[SecretKeySSHKnownHosts]),
			CABundle:      string(s.Data[SecretKeyCABundle]),
		}
		if tok := string(s.Data[SecretKeyToken]); tok != "" {
			c.Password = tok
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].URLPrefix < out[j].URLPrefix })
	return out
}

func (c *Credential) authMethod(repoURL string) (transport.AuthMethod, error) {
	isSSH := strings.HasPrefix(repoURL, "ssh://") || scpLike.MatchString(repoURL)
	if isSSH {
		if c.SSHPrivateKey == "" {
			return nil, fmt.Errorf("%s has no sshPrivateKey for an SSH URL", c)
		}
		user := "git"
		if at := strings.Index(strings.TrimPrefix(repoURL, "ssh://"), "@"); at > 0 {
			user = strings.TrimPrefix(repoURL, "ssh://")[:at]
		}
		keys, err := gitssh.NewPublicKeys(user, []byte(c.SSHPrivateKey), "")
		if err != nil {
			return nil, fmt.Errorf("%s: parse sshPrivateKey: %w", c, err)
		}
		if c.SSHKnownHosts != "" {
			cb, err := knownHostsCallback(c.SSHKnownHosts)
			if err != nil {
				return nil, fmt.Errorf("%s: parse sshKnownHosts: %w", c, err)
			}
			keys.HostKeyCallback = cb
		}
		return keys, nil
	}
	if c.Password == "" && c.Username == "" {
		return nil, nil
	}
	user := c.Username
	if user == "" {
		user = "git"
	}
	return &githttp.BasicAuth{Username: user, Password: c.Password}, nil
}

// CheckCredential lists repoURL's references with cred (nothing is
// fetched): it says whether the server accepts the credential, in words
// that never contain the secret.
func CheckCredential(ctx context.Context, repoURL string, cred Credential, allowLoopback bool, timeout time.Duration) error {
	if err := validateURL(repoURL, allowLoopback); err != nil {
		return err
	}
	auth, err := cred.authMethod(repoURL)
	if err != nil {
		return err
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	remote := gogit.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: "origin", URLs: []string{repoURL}})
	_, err = remote.ListContext(ctx, &gogit.ListOptions{Auth: auth, CABundle: []byte(cred.CABundle)})
	switch {
	case err == nil:
		return nil
	case errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed):
		return fmt.Errorf("%s refused these credentials (%w): check the username and the password or token, and that they may read this repository", RedactURL(repoURL), err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return fmt.Errorf("no repository at %s (%w): name one repository (with --prefix, one under the prefix)", RedactURL(repoURL), err)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s did not answer within %s: check that it is reachable from here", RedactURL(repoURL), timeout)
	default:
		return fmt.Errorf("list references of %s: %w", RedactURL(repoURL), err)
	}
}
