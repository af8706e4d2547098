// Package helmchart fetches Helm chart archives from Helm HTTP repositories
// (index.yaml) and OCI registries (Helm's registry client), with the
// repository credentials of internal/git, a byte budget on everything read
// from the network, and a timeout. It resolves a version or semver range to
// one chart version. Rendering is the agent's business; this package only
// brings the archive.
package helmchart

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/Masterminds/semver/v3"
	"helm.sh/helm/v3/pkg/registry"
	"helm.sh/helm/v3/pkg/repo"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"sigs.k8s.io/yaml"

	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// Defaults.
const (
	// DefaultMaxArchiveBytes bounds a chart archive (and an index.yaml).
	DefaultMaxArchiveBytes = 16 << 20
	DefaultTimeout         = 60 * time.Second
	archiveCacheSize       = 64
)

// ErrNotFound means the repository has no such chart or no version that
// satisfies the constraint.
var ErrNotFound = errors.New("chart not found")

// ErrTooLarge means the server sent more than the byte budget.
var ErrTooLarge = errors.New("over the size limit")

// Options configure a Fetcher.
type Options struct {
	// Credentials by URL prefix (oci://host for registries); nil is anonymous.
	Credentials git.CredentialSource
	// MaxArchiveBytes bounds each archive and index (default 16 MiB).
	MaxArchiveBytes int64
	// Timeout bounds one fetch (default 60s).
	Timeout time.Duration
	// AllowLoopback lets repoURLs name this machine (local test servers);
	// loopback registries are then spoken to over plain HTTP.
	AllowLoopback bool
}

// Chart is one fetched chart version.
type Chart struct {
	Name    string
	Version string
	// Archive is the chart's .tgz.
	Archive []byte
}

// Fetcher fetches charts. Archives are kept by (repoURL, chart, version)
// in a small LRU, so re-checking a pinned version costs an index or tag
// lookup, not a download.
type Fetcher struct {
	opts Options

	mu      sync.Mutex
	cache   map[string]*Chart
	order   []string
	indexes map[string]cachedIndex // repoURL → its index.yaml, briefly
}

type cachedIndex struct {
	idx *repo.IndexFile
	at  time.Time
}

// IndexTTL is how long a repository's index.yaml answers every
// Application's check: a hundred Applications of one repository cost one
// download per IndexTTL, not one each.
const IndexTTL = 30 * time.Second

// New makes a Fetcher.
func New(o Options) *Fetcher {
	if o.MaxArchiveBytes <= 0 {
		o.MaxArchiveBytes = DefaultMaxArchiveBytes
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	return &Fetcher{opts: o, cache: map[string]*Chart{}, indexes: map[string]cachedIndex{}}
}

// IsOCI reports whether repoURL names an OCI registry.
func IsOCI(repoURL string) bool { return strings.HasPrefix(strings.ToLower(repoURL), "oci://") }

// Fetch resolves version (a version, a semver range, or "" for the newest)
// of chart in repoURL and returns its archive.
func (f *Fetcher) Fetch(ctx context.Context, repoURL, chart, version string) (*Chart, error) {
	if err := git.ValidateURLAllowing(repoURL, f.opts.AllowLoopback); err != nil {
		return nil, err
	}
	if chart == "" || strings.ContainsAny(chart, "/\\") || chart == "." || chart == ".." {
		return nil, fmt.Errorf("chart %q: name one chart of the repository", chart)
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	cred, err := f.credential(ctx, repoURL)
	if err != nil {
		return nil, err
	}
	budget := &budget{left: f.opts.MaxArchiveBytes}
	hc, err := f.httpClient(cred, budget)
	if err != nil {
		return nil, err
	}
	var c *Chart
	if IsOCI(repoURL) {
		c, err = f.fetchOCI(ctx, hc, cred, repoURL, chart, version)
	} else {
		c, err = f.fetchHTTP(ctx, hc, cred, repoURL, chart, version)
	}
	if err == nil {
		return c, nil
	}
	switch {
	case errors.Is(err, ErrTooLarge) || budget.over():
		return nil, fmt.Errorf("chart %s from %s: %w: the server sent more than %d MiB (raise --max-chart-bytes if the chart is really this big)", chart, git.RedactURL(repoURL), ErrTooLarge, f.opts.MaxArchiveBytes>>20)
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		return nil, fmt.Errorf("chart %s from %s: timed out after %s: check that the repository is reachable from here", chart, git.RedactURL(repoURL), f.opts.Timeout)
	}
	return nil, err
}

func (f *Fetcher) credential(ctx context.Context, repoURL string) (*git.Credential, error) {
	if f.opts.Credentials == nil {
		return nil, nil
	}
	c, err := f.opts.Credentials.Credential(ctx, repoURL)
	if err != nil {
		return nil, fmt.Errorf("look up credentials for %s: %w", git.RedactURL(repoURL), err)
	}
	return c, nil
}

// httpClient trusts the credential's CA bundle and stops reading past the budget.
func (f *Fetcher) httpClient(cred *git.Credential, b *budget) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if cred != nil && cred.CABundle != "" {
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM([]byte(cred.CABundle)) {
			return nil, fmt.Errorf("%s: caBundle holds no PEM certificate", cred)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// A little past the fetch's deadline: Helm's registry client takes no context, so
	// this stops it, and the deadline, not the client, is what the user hears of.
	return &http.Client{Transport: budgetTransport{next: tr, budget: b}, Timeout: f.opts.Timeout + time.Second}, nil
}

// fetchHTTP reads the repository's index.yaml, picks the version, and
// downloads its archive.
func (f *Fetcher) fetchHTTP(ctx context.Context, hc *http.Client, cred *git.Credential, repoURL, chart, version string) (*Chart, error) {
	base, err := url.Parse(strings.TrimSuffix(repoURL, "/") + "/")
	if err != nil {
		return nil, errors.New("the repoURL does not parse")
	}
	idx, err := f.index(ctx, hc, cred, base, repoURL)
	if err != nil {
		return nil, err
	}
	cv, err := idx.Get(chart, version)
	if err != nil {
		return nil, fmt.Errorf("%w: %s has no chart %s matching version %q (%s)", ErrNotFound, git.RedactURL(repoURL), chart, version, kube.FirstLine(err))
	}
	key := repoURL + "|" + chart + "|" + cv.Version + "|" + cv.Digest
	if c := f.cached(key); c != nil {
		return c, nil
	}
	if len(cv.URLs) == 0 {
		return nil, fmt.Errorf("%s %s in %s has no download URL", chart, cv.Version, git.RedactURL(repoURL))
	}
	ref, err := url.Parse(cv.URLs[0])
	if err != nil {
		return nil, fmt.Errorf("%s %s in %s: its download URL does not parse", chart, cv.Version, git.RedactURL(repoURL))
	}
	dl := base.ResolveReference(ref)
	if err := git.ValidateURLAllowing(dl.String(), f.opts.AllowLoopback); err != nil {
		return nil, fmt.Errorf("%s %s: download URL: %w", chart, cv.Version, err)
	}
	// Credentials go only to the repository's own host (as helm's pass-credentials=false).
	if dl.Host != base.Host {
		cred = nil
	}
	archive, err := get(ctx, hc, cred, dl.String(), repoURL)
	if err != nil {
		return nil, err
	}
	return f.keep(key, &Chart{Name: chart, Version: cv.Version, Archive: archive}), nil
}

// index is the repository's index.yaml, downloaded at most every IndexTTL
// with the same credential (a new one is tried at once).
func (f *Fetcher) index(ctx context.Context, hc *http.Client, cred *git.Credential, base *url.URL, repoURL string) (*repo.IndexFile, error) {
	key := repoURL + "|" + fingerprint(cred)
	f.mu.Lock()
	c, ok := f.indexes[key]
	f.mu.Unlock()
	if ok && time.Since(c.at) < IndexTTL {
		return c.idx, nil
	}
	raw, err := get(ctx, hc, cred, base.JoinPath("index.yaml").String(), repoURL)
	if err != nil {
		return nil, err
	}
	if err := yamlbound.Check(raw, yamlbound.Limits{}); err != nil {
		return nil, fmt.Errorf("index.yaml of %s: %w", git.RedactURL(repoURL), err)
	}
	idx := &repo.IndexFile{}
	if err := yaml.Unmarshal(raw, idx); err != nil {
		return nil, fmt.Errorf("index.yaml of %s does not parse: %s", git.RedactURL(repoURL), kube.FirstLine(err))
	}
	for name, vs := range idx.Entries {
		idx.Entries[name] = slicesDeleteNil(vs)
	}
	idx.SortEntries()
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, old := range f.indexes {
		if time.Since(old.at) > IndexTTL {
			delete(f.indexes, k)
		}
	}
	f.indexes[key] = cachedIndex{idx: idx, at: time.Now()}
	return idx, nil
}

// fingerprint tells credentials apart without keeping them.
func fingerprint(c *git.Credential) string {
	if c == nil {
		return "anonymous"
	}
	sum := sha256.Sum256([]byte(c.Username + "\x00" + c.Password + "\x00" + c.CABundle))
	return hex.EncodeToString(sum[:8])
}

func get(ctx context.Context, hc *http.Client, cred *git.Credential, u, repoURL string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	if cred != nil && (cred.Username != "" || cred.Password != "") {
		user := cred.Username
		if user == "" {
			user = "git"
		}
		req.SetBasicAuth(user, cred.Password)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %s", git.RedactURL(u), netErr(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, fmt.Errorf("%s refused the credentials (%s): %s", git.RedactURL(repoURL), resp.Status, credentialHint(cred))
	case resp.StatusCode == http.StatusNotFound:
		return nil, fmt.Errorf("%w: GET %s: %s", ErrNotFound, git.RedactURL(u), resp.Status)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("GET %s: %s", git.RedactURL(u), resp.Status)
	}
	return io.ReadAll(resp.Body)
}

func credentialHint(cred *git.Credential) string {
	if cred == nil {
		return "no credentials are stored for this URL: add them on the hub with flotilla repo add URL --type helm ..."
	}
	return "check the username and the password or token (flotilla repo add URL ... again to replace them)"
}

// noCredentialsFile is a path that does not exist: Helm's registry client
// then has no stored credentials (ours come through the authorizer).
var noCredentialsFile = filepath.Join(os.TempDir(), "flotilla-no-registry-credentials", "config.json")

// fetchOCI lists the chart's tags (for a range), then pulls it with Helm's
// registry client, authenticated with our credential only (never a Docker
// credential store or helper on the agent's machine).
func (f *Fetcher) fetchOCI(ctx context.Context, hc *http.Client, cred *git.Credential, repoURL, chart, version string) (*Chart, error) {
	ref := strings.TrimSuffix(strings.TrimPrefix(repoURL, "oci://"), "/") + "/" + chart
	authorizer := &auth.Client{Client: hc, Credential: func(context.Context, string) (auth.Credential, error) {
		if cred == nil {
			return auth.EmptyCredential, nil
		}
		return auth.Credential{Username: cred.Username, Password: cred.Password}, nil
	}}
	opts := []registry.ClientOption{registry.ClientOptHTTPClient(hc), registry.ClientOptAuthorizer(*authorizer), registry.ClientOptCredentialsFile(noCredentialsFile)}
	if host := strings.SplitN(ref, "/", 2)[0]; f.opts.AllowLoopback && isLoopback(host) {
		opts = append(opts, registry.ClientOptPlainHTTP())
	}
	rc, err := registry.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("registry client for %s: %w", git.RedactURL(repoURL), err)
	}
	type result struct {
		c   *Chart
		err error
	}
	// Helm's registry client takes no context: run it aside and give up at the deadline
	// (its HTTP client has the same timeout, so it does not linger).
	done := make(chan result, 1)
	go func() {
		v, err := f.ociVersion(rc, ref, version)
		if err != nil {
			done <- result{err: err}
			return
		}
		key := repoURL + "|" + chart + "|" + v
		if c := f.cached(key); c != nil {
			done <- result{c: c}
			return
		}
		pulled, err := rc.Pull(ref+":"+v, registry.PullOptWithChart(true))
		if err != nil {
			done <- result{err: ociErr(repoURL, chart, v, err, cred)}
			return
		}
		done <- result{c: f.keep(key, &Chart{Name: chart, Version: v, Archive: pulled.Chart.Data})}
	}()
	select {
	case r := <-done:
		return r.c, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ociVersion is version when exact, else the newest tag satisfying it.
func (f *Fetcher) ociVersion(rc *registry.Client, ref, version string) (string, error) {
	if _, err := semver.StrictNewVersion(strings.TrimPrefix(version, "v")); err == nil && version != "" {
		return version, nil
	}
	constraint, err := semver.NewConstraint(orStar(version))
	if err != nil {
		return "", fmt.Errorf("version %q is neither a version nor a semver range: %w", version, err)
	}
	tags, err := rc.Tags(ref)
	if err != nil {
		return "", ociErr("oci://"+ref, "", version, err, nil)
	}
	var found []*semver.Version
	for _, t := range tags {
		if v, err := semver.NewVersion(t); err == nil && constraint.Check(v) {
			found = append(found, v)
		}
	}
	if len(found) == 0 {
		return "", fmt.Errorf("%w: oci://%s has no version matching %q", ErrNotFound, ref, version)
	}
	sort.Sort(sort.Reverse(semver.Collection(found)))
	return found[0].Original(), nil
}

func orStar(v string) string {
	if v == "" {
		return "*"
	}
	return v
}

func ociErr(repoURL, chart, version string, err error, cred *git.Credential) error {
	msg := kube.FirstLine(err)
	switch {
	case errors.Is(err, ErrTooLarge):
		return err
	case strings.Contains(msg, "credential not found") || strings.Contains(msg, "401") || strings.Contains(msg, "unauthorized") || strings.Contains(msg, "403") || strings.Contains(msg, "denied"):
		return fmt.Errorf("%s refused the credentials: %s", git.RedactURL(repoURL), credentialHint(cred))
	case strings.Contains(msg, "not found") || strings.Contains(msg, "404"):
		return fmt.Errorf("%w: %s has no chart %s at version %s", ErrNotFound, git.RedactURL(repoURL), chart, version)
	}
	return fmt.Errorf("pull chart %s %s from %s: %s", chart, version, git.RedactURL(repoURL), msg)
}

func isLoopback(hostport string) bool {
	h := hostport
	if i := strings.LastIndex(h, ":"); i > 0 && !strings.HasSuffix(h, "]") {
		h = h[:i]
	}
	h = strings.Trim(h, "[]")
	return h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1"
}

func (f *Fetcher) cached(key string) *Chart {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cache[key]
}

func (f *Fetcher) keep(key string, c *Chart) *Chart {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.cache[key]; !ok {
		f.order = append(f.order, key)
		if len(f.order) > archiveCacheSize {
			delete(f.cache, f.order[0])
			f.order = f.order[1:]
		}
	}
	f.cache[key] = c
	return c
}

func slicesDeleteNil(vs repo.ChartVersions) repo.ChartVersions {
	out := vs[:0]
	for _, v := range vs {
		if v != nil && v.Metadata != nil {
			out = append(out, v)
		}
	}
	return out
}

func netErr(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return kube.FirstLine(err)
}

// budget is the bytes a fetch may still read, shared by its requests.
type budget struct {
	mu   sync.Mutex
	left int64
	hit  bool
}

func (b *budget) take(n int) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.left -= int64(n)
	if b.left < 0 {
		b.hit = true
	}
	return b.left >= 0
}

// fits reports whether n more bytes fit, and marks the budget hit if not.
func (b *budget) fits(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n > b.left {
		b.hit = true
	}
	return !b.hit
}

func (b *budget) over() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.hit
}

type budgetTransport struct {
	next   http.RoundTripper
	budget *budget
}

func (t budgetTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(r)
	if err != nil {
		return nil, err
	}
	if resp.ContentLength > 0 && !t.budget.fits(resp.ContentLength) {
		resp.Body.Close()
		return nil, ErrTooLarge
	}
	resp.Body = &budgetBody{ReadCloser: resp.Body, budget: t.budget}
	return resp, nil
}

type budgetBody struct {
	io.ReadCloser
	budget *budget
}

func (b *budgetBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if n > 0 && !b.budget.take(n) {
		return n, ErrTooLarge
	}
	return n, err
}

// CheckCredential checks cred against a Helm repository (its index.yaml)
// or, for oci://, a registry (the registry's auth flow), in words that
// never contain the secret.
func CheckCredential(ctx context.Context, repoURL string, cred git.Credential, allowLoopback bool, timeout time.Duration) error {
	f := New(Options{Credentials: git.StaticCredentials{cred}, AllowLoopback: allowLoopback, Timeout: timeout})
	if err := git.ValidateURLAllowing(repoURL, allowLoopback); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, f.opts.Timeout)
	defer cancel()
	hc, err := f.httpClient(&cred, &budget{left: f.opts.MaxArchiveBytes})
	if err != nil {
		return err
	}
	if IsOCI(repoURL) {
		host := strings.SplitN(strings.TrimPrefix(repoURL, "oci://"), "/", 2)[0]
		reg, err := remote.NewRegistry(host)
		if err != nil {
			return fmt.Errorf("registry %s: %s", host, kube.FirstLine(err))
		}
		reg.PlainHTTP = allowLoopback && isLoopback(host)
		reg.Client = &auth.Client{Client: hc, Credential: auth.StaticCredential(host, auth.Credential{Username: cred.Username, Password: cred.Password})}
		if err := reg.Ping(ctx); err != nil {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("%s did not answer within %s: check that it is reachable from here", host, f.opts.Timeout)
			}
			return ociErr(repoURL, "", "", err, &cred)
		}
		return nil
	}
	base := strings.TrimSuffix(repoURL, "/") + "/index.yaml"
	if _, err := get(ctx, hc, &cred, base, repoURL); err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fmt.Errorf("%s did not answer within %s: check that it is reachable from here", git.RedactURL(repoURL), f.opts.Timeout)
		}
		return err
	}
	return nil
}
