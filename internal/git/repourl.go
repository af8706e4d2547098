package git

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path"
	"strings"
)

// location is a repository URL reduced to what credentials match on:
// scheme (ssh for scp-like URLs), lower-case host, explicit port, and path
// segments (a trailing ".git" dropped).
type location struct {
	scheme, host, port string
	segments           []string
}

// oci:// is for Helm charts in OCI registries (credentials by registry host).
var defaultPorts = map[string]string{"https": "443", "http": "80", "ssh": "22", "git": "9418", "oci": "443"}

// parseLocation parses a repository URL (or a credential's URL prefix). It
// refuses userinfo that carries a secret: a password in any URL, or any
// user at all in an http(s) or git URL (credentials belong in Secrets, and
// "https://trusted-host@evil-host/" must not look like trusted-host).
func parseLocation(raw string) (location, error) {
	if m := scpLike.FindString(raw); m != "" {
		at := strings.Index(raw, "@")
		colon := strings.Index(raw[at:], ":") + at
		return newLocation("ssh", raw[at+1:colon], "", raw[colon+1:]), nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return location{}, errors.New("the URL does not parse") // never quote it: it may hold a secret
	}
	scheme := strings.ToLower(u.Scheme)
	if _, ok := defaultPorts[scheme]; !ok {
		return location{}, fmt.Errorf("scheme %q is not supported: use https://, http://, ssh://, user@host:path or, for Helm charts, oci://", u.Scheme)
	}
	if u.User != nil {
		if _, hasPassword := u.User.Password(); hasPassword || scheme != "ssh" {
			// never quote the URL: the user information may be a token
			return location{}, errors.New("the URL carries user information: put credentials in a repository Secret, not in the URL")
		}
	}
	if u.Host == "" {
		return location{}, errors.New("the URL has no host")
	}
	return newLocation(scheme, u.Hostname(), u.Port(), u.Path), nil
}

func newLocation(scheme, host, port, p string) location {
	if port == "" {
		port = defaultPorts[scheme]
	}
	l := location{scheme: scheme, host: strings.ToLower(host), port: port}
	for _, s := range strings.Split(path.Clean("/"+p), "/") {
		if s != "" {
			l.segments = append(l.segments, s)
		}
	}
	if n := len(l.segments); n > 0 {
		l.segments[n-1] = strings.TrimSuffix(l.segments[n-1], ".git")
	}
	return l
}

// covers reports whether a credential at l applies to repository r: same
// scheme, host and port exactly, and l's path a prefix of r's on segment
// boundaries.
func (l location) covers(r location) bool {
	if l.scheme != r.scheme || l.host != r.host || l.port != r.port || len(l.segments) > len(r.segments) {
		return false
	}
	for i, s := range l.segments {
		if r.segments[i] != s {
			return false
		}
	}
	return true
}

// RedactURL drops any user information from a URL for messages: a repoURL
// may carry a token, which must not reach logs, Events or status.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil || u.Scheme == "" {
		return raw
	}
	u.User = nil
	return u.String()
}

// metadataHosts are cloud metadata services by name.
var metadataHosts = map[string]bool{"metadata.google.internal": true, "metadata": true, "metadata.azure.com": true}

// checkHost refuses repository hosts that reach the machine's own
// surroundings rather than a Git server: link-local and cloud metadata
// addresses always, loopback unless allowed (local test servers).
func checkHost(host string, allowLoopback bool) error {
	h := strings.ToLower(strings.TrimSuffix(host, "."))
	if metadataHosts[h] {
		return fmt.Errorf("host %s is a cloud metadata service, not a Git server", host)
	}
	if h == "localhost" || strings.HasSuffix(h, ".localhost") {
		if allowLoopback {
			return nil
		}
		return fmt.Errorf("host %s is this machine: loopback repositories are refused (flag --allow-loopback-repositories for local testing)", host)
	}
	ip := net.ParseIP(strings.Trim(h, "[]"))
	if ip == nil {
		return nil
	}
	switch {
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast(), ip.IsUnspecified(), ip.IsMulticast(),
		ip.Equal(net.ParseIP("fd00:ec2::254")), ip.Equal(net.ParseIP("100.100.100.200")):
		return fmt.Errorf("address %s is link-local, unspecified or a cloud metadata service, not a Git server", host)
	case ip.IsLoopback() && !allowLoopback:
		return fmt.Errorf("address %s is this machine: loopback repositories are refused (flag --allow-loopback-repositories for local testing)", host)
	}
	return nil
}

// ValidateURLAllowing is ValidateURL, with loopback allowed when asked
// (local fleets and tests).
func ValidateURLAllowing(u string, allowLoopback bool) error { return validateURL(u, allowLoopback) }

// RepositoryKey reduces a repository URL to host/path, to tell whether two
// spellings name one repository (webhooks, commit links): scheme, user,
// port, a trailing .git and slashes dropped, lower-cased, so
// https://github.com/Org/App.git and git@github.com:org/app match. It is
// not for credentials, which match exactly (parseLocation). "" when the
// URL names no host.
func RepositoryKey(raw string) string {
	raw = strings.TrimSpace(raw)
	host, p := "", ""
	if u, err := url.Parse(raw); err == nil && u.Host != "" {
		host, p = u.Hostname(), u.Path
	} else if at, colon := strings.Index(raw, "@"), strings.Index(raw, ":"); colon > at && at >= 0 {
		host, p = raw[at+1:colon], raw[colon+1:]
	} else {
		return ""
	}
	p = strings.Trim(strings.TrimSuffix(strings.TrimSuffix(p, "/"), ".git"), "/")
	return strings.ToLower(host + "/" + p)
}
