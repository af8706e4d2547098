// Package git is Flotilla's read-only Git access, shared by the hub's git
// generators and the spoke agent. It keeps one bare, shallow, on-disk
// repository per URL under a cache directory (and writes nowhere else),
// resolves branches, tags and SHAs to commits, and reads trees and files at
// a commit. Every network operation has a timeout.
package git

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	gogit "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Defaults.
const (
	DefaultTimeout     = 60 * time.Second
	DefaultMaxFileSize = 1 << 20 // 1 MiB
	snapshotCacheSize  = 64
	// DefaultMaxOpenRepos bounds the repositories kept open (their
	// on-disk caches stay; an evicted one is opened again when next used).
	DefaultMaxOpenRepos = 256
	objectCacheSize     = 64 * cache.MiByte
)

// ErrUnknownRevision means the remote has no branch, tag or commit of that name.
var ErrUnknownRevision = errors.New("unknown revision")

// Options configure a Cache.
type Options struct {
	// Dir is the cache root; one bare repository per URL lives below it.
	Dir string
	// Timeout bounds each network operation (default 60s).
	Timeout time.Duration
	// Credentials supplies auth by repository URL; nil means anonymous.
	Credentials CredentialSource
	// MaxFileSize caps ReadFile (default 1 MiB).
	MaxFileSize int64
	// AllowLoopback lets repoURLs name this machine (local test servers).
	AllowLoopback bool
	// Limits bound each fetch (defaults: DefaultMaxObjectSize, DefaultMaxFetchSize).
	Limits Limits
	// MaxOpenRepos bounds the repositories kept open (default DefaultMaxOpenRepos).
	MaxOpenRepos int
}

// Cache is a concurrency-safe set of on-disk repository caches.
type Cache struct {
	opts Options

	mu    sync.Mutex
	repos map[string]*repo

	snapMu    sync.Mutex
	snapshots map[string]*Snapshot // key: url + "@" + sha
	snapOrder []string
	// objects is one decoded-object LRU for every repository (objects are
	// keyed by hash, so sharing is safe): memory stays bounded however many
	// repositories the fleet uses (go-git's default is 96 MiB each).
	objects *cache.ObjectLRU
}

type repo struct {
	url      string
	dir      string
	mu       sync.RWMutex // Lock for fetches, RLock for reads
	r        *gogit.Repository
	lastUsed time.Time // guarded by Cache.mu
}

// New makes a Cache rooted at opts.Dir (created if missing).
func New(opts Options) (*Cache, error) {
	if opts.Dir == "" {
		return nil, errors.New("git cache: a cache directory is required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	abs, err := filepath.Abs(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("git cache: %w", err)
	}
	opts.Dir = abs
	opts.Limits = opts.Limits.withDefaults()
	if opts.MaxOpenRepos <= 0 {
		opts.MaxOpenRepos = DefaultMaxOpenRepos
	}
	if err := os.MkdirAll(abs, 0o700); err != nil {
		return nil, fmt.Errorf("git cache: create %s: %w", abs, err)
	}
	return &Cache{opts: opts, repos: map[string]*repo{}, snapshots: map[string]*Snapshot{}, objects: cache.NewObjectLRU(objectCacheSize)}, nil
}

// Dir is the cache root.
func (c *Cache) Dir() string { return c.opts.Dir }

// repoDir is where the cache keeps url's bare repository.
func (c *Cache) repoDir(url string) string {
	sum := sha256.Sum256([]byte(url))
	return filepath.Join(c.opts.Dir, hex.EncodeToString(sum[:12]))
}

func (c *Cache) repo(url string) (*repo, error) {
	if err := validateURL(url, c.opts.AllowLoopback); err != nil {
		return nil, err
	}
	if strings.HasPrefix(strings.ToLower(url), "oci://") {
		return nil, fmt.Errorf("repoURL %s is an OCI registry, not a Git repository: name the chart in source.chart", RedactURL(url))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if r, ok := c.repos[url]; ok {
		r.lastUsed = time.Now()
		return r, nil
	}
	c.evictIdleLocked()
	dir := c.repoDir(url)
	// BoundOS keeps every path go-git touches inside dir.
	storage := &guardedStorage{Storage: filesystem.NewStorage(osfs.New(dir, osfs.WithBoundOS()), c.objects), limits: c.opts.Limits}
	r, err := gogit.Open(storage, nil)
	if errors.Is(err, gogit.ErrRepositoryNotExists) {
		r, err = gogit.Init(storage, nil)
		if err == nil {
			_, err = r.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{url}})
		}
	}
	if err != nil {
		return nil, fmt.Errorf("open cache for %s in %s: %w", url, dir, err)
	}
	rp := &repo{url: url, dir: dir, r: r, lastUsed: time.Now()}
	c.repos[url] = rp
	return rp, nil
}

// evictIdleLocked closes the least recently used repositories not in use
// while MaxOpenRepos or more are open (c.mu held).
func (c *Cache) evictIdleLocked() {
	for len(c.repos) >= c.opts.MaxOpenRepos {
		var oldest *repo
		for _, r := range c.repos {
			if (oldest == nil || r.lastUsed.Before(oldest.lastUsed)) && r.mu.TryLock() {
				if oldest != nil {
					oldest.mu.Unlock()
				}
				oldest = r
			}
		}
		if oldest == nil {
			return // all in use: let the map grow for now
		}
		delete(c.repos, oldest.url)
		oldest.mu.Unlock()
	}
}

// OpenRepos is how many repositories the cache keeps open (tests).
func (c *Cache) OpenRepos() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.repos)
}

var shaPattern = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Resolve returns the commit SHA that revision (a branch, tag, full commit
// SHA, or ""/HEAD for the default branch) names in repoURL, fetching it
// into the cache when missing.
func (c *Cache) Resolve(ctx context.Context, repoURL, revision string) (string, error) {
	r, err := c.repo(repoURL)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	defer cancel()
	auth, ca, err := c.auth(ctx, repoURL)
	if err != nil {
		return "", err
	}

	r.mu.Lock()
	defer r.mu.Unlock()

	if shaPattern.MatchString(revision) {
		if r.hasCommit(revision) {
			return revision, nil
		}
		return revision, c.fetchSHA(ctx, r, revision, auth, ca)
	}

	remote, err := r.r.Remote("origin")
	if err != nil {
		return "", fmt.Errorf("open remote of %s: %w", repoURL, err)
	}
	refs, err := remote.ListContext(ctx, &gogit.ListOptions{Auth: auth, CABundle: ca, PeelingOption: gogit.AppendPeeled})
	if err != nil {
		return "", c.describeNetErr(ctx, "list references of "+repoURL, c.opts.Timeout, err)
	}
	ref, sha, ok := pickRef(refs, revision)
	if !ok {
		return "", fmt.Errorf("resolve %q in %s: %w: no branch or tag of that name (use a branch, a tag or a full 40-character commit SHA)", revision, repoURL, ErrUnknownRevision)
	}
	if r.hasCommit(sha) {
		return sha, nil
	}
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", ref, ref))
	err = remote.FetchContext(ctx, &gogit.FetchOptions{RefSpecs: []config.RefSpec{spec}, Depth: 1, Auth: auth, CABundle: ca, Tags: gogit.NoTags, Force: true})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return "", c.describeNetErr(ctx, fmt.Sprintf("fetch %s of %s", ref, repoURL), c.opts.Timeout, err)
	}
	if !r.hasCommit(sha) {
		return "", fmt.Errorf("fetch %s of %s: commit %s still missing after fetch", ref, repoURL, sha)
	}
	return sha, nil
}

// fetchSHA fetches a commit named by SHA: first by asking for it directly
// (servers that allow it), then by fetching every branch and tag.
func (c *Cache) fetchSHA(ctx context.Context, r *repo, sha string, auth transport.AuthMethod, ca []byte) error {
	remote, err := r.r.Remote("origin")
	if err != nil {
		return err
	}
	direct := config.RefSpec(fmt.Sprintf("%s:refs/flotilla/%s", sha, sha))
	if err := remote.FetchContext(ctx, &gogit.FetchOptions{RefSpecs: []config.RefSpec{direct}, Depth: 1, Auth: auth, CABundle: ca, Tags: gogit.NoTags}); err == nil && r.hasCommit(sha) {
		return nil
	} else if ctx.Err() != nil {
		return c.describeNetErr(ctx, "fetch commit "+sha+" of "+r.url, c.opts.Timeout, err)
	}
	// The server does not hand out commits by SHA: look in the recent
	// history of its branches and tags, never in all of it (an unknown SHA
	// must not cost a full clone).
	all := []config.RefSpec{"+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"}
	err = remote.FetchContext(ctx, &gogit.FetchOptions{RefSpecs: all, Depth: MaxSHADepth, Auth: auth, CABundle: ca, Tags: gogit.NoTags, Force: true})
	if err != nil && !errors.Is(err, gogit.NoErrAlreadyUpToDate) {
		return c.describeNetErr(ctx, "fetch "+r.url, c.opts.Timeout, err)
	}
	if !r.hasCommit(sha) {
		return fmt.Errorf("resolve %s in %s: %w: no such commit among the last %d of any branch or tag (pin a branch or tag, or a more recent commit)", sha, r.url, ErrUnknownRevision, MaxSHADepth)
	}
	return nil
}

// MaxSHADepth is how far back on each branch and tag a commit SHA the
// server will not serve directly is looked for.
const MaxSHADepth = 50

func (r *repo) hasCommit(sha string) bool {
	_, err := r.r.CommitObject(plumbing.NewHash(sha))
	return err == nil
}

// pickRef finds the reference a revision names: HEAD, a branch, a tag
// (peeled to its commit) or a full reference name.
func pickRef(refs []*plumbing.Reference, revision string) (plumbing.ReferenceName, string, bool) {
	byName := map[plumbing.ReferenceName]*plumbing.Reference{}
	for _, ref := range refs {
		byName[ref.Name()] = ref
	}
	var candidates []plumbing.ReferenceName
	switch {
	case revision == "" || revision == "HEAD":
		head, ok := byName[plumbing.HEAD]
		if !ok {
			return "", "", false
		}
		if head.Type() == plumbing.SymbolicReference {
			candidates = []plumbing.ReferenceName{head.Target()}
		} else {
			// The server sent HEAD as a hash: find the branch at that hash so
			// the fetch names a real reference.
			for _, ref := range refs {
				if ref.Name().IsBranch() && ref.Hash() == head.Hash() {
					return ref.Name(), head.Hash().String(), true
				}
			}
			return "", "", false
		}
	case strings.HasPrefix(revision, "refs/"):
		candidates = []plumbing.ReferenceName{plumbing.ReferenceName(revision)}
	default:
		candidates = []plumbing.ReferenceName{plumbing.NewBranchReferenceName(revision), plumbing.NewTagReferenceName(revision)}
	}
	for _, name := range candidates {
		ref, ok := byName[name]
		if !ok {
			continue
		}
		if peeled, ok := byName[plumbing.ReferenceName(string(name)+"^{}")]; ok {
			return name, peeled.Hash().String(), true
		}
		return name, ref.Hash().String(), true
	}
	return "", "", false
}

// auth is the credential's auth method and CA bundle for repoURL (nil,
// nil for anonymous access).
func (c *Cache) auth(ctx context.Context, repoURL string) (transport.AuthMethod, []byte, error) {
	if c.opts.Credentials == nil {
		return nil, nil, nil
	}
	cred, err := c.opts.Credentials.Credential(ctx, repoURL)
	if err != nil {
		return nil, nil, fmt.Errorf("look up credentials for %s: %w", RedactURL(repoURL), err)
	}
	if cred == nil {
		return nil, nil, nil
	}
	auth, err := cred.authMethod(repoURL)
	var ca []byte
	if cred.CABundle != "" {
		ca = []byte(cred.CABundle)
	}
	return auth, ca, err
}

func (c *Cache) describeNetErr(ctx context.Context, what string, timeout time.Duration, err error) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("%s: timed out after %s: check that the repository is reachable from here", what, timeout)
	}
	if errors.Is(err, transport.ErrAuthenticationRequired) || errors.Is(err, transport.ErrAuthorizationFailed) {
		if c.opts.Credentials == nil {
			// Agents and the CLI read repositories anonymously: asking for
			// credentials they cannot take would send the user nowhere.
			return fmt.Errorf("%s: %w: this component reads repositories without credentials: make the repository readable without them", what, err)
		}
		return fmt.Errorf("%s: %w: add or fix the hub's repository credentials for this URL (flotilla repo add URL ...; the hub copies them to the spokes that need them)", what, err)
	}
	if errors.Is(err, transport.ErrRepositoryNotFound) {
		return fmt.Errorf("%s: %w: check the repoURL", what, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// ValidateURL accepts https://, http://, ssh://, git:// and scp-like
// user@host:path URLs. Local paths and file:// are refused: a manifest must
// not read the controller's own disk.
//
// Link-local and cloud metadata hosts are refused, and so is loopback.
func ValidateURL(u string) error { return validateURL(u, false) }

func validateURL(u string, allowLoopback bool) error {
	if u == "" {
		return errors.New("repoURL is empty")
	}
	l, err := parseLocation(u)
	if err == nil {
		err = checkHost(l.host, allowLoopback)
	}
	if err != nil {
		return fmt.Errorf("repoURL %s: %w", RedactURL(u), err)
	}
	return nil
}

var scpLike = regexp.MustCompile(`^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/]`)
