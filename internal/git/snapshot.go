package git

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// ErrEscapesRepo means a path or symlink leads outside the repository.
var ErrEscapesRepo = errors.New("path leaves the repository")

// ErrTooLarge means a file is over the size cap.
var ErrTooLarge = errors.New("file too large")

// Kind is what a path in a snapshot is, after following symlinks.
type Kind int

// Kinds of paths.
const (
	KindNone Kind = iota
	KindFile
	KindDir
)

type entry struct {
	mode filemode.FileMode
	hash plumbing.Hash
}

// Snapshot is the tree of one commit. It is immutable and safe for
// concurrent use.
type Snapshot struct {
	// URL of the repository.
	URL string
	// Revision is the commit SHA.
	Revision string
	// CommitTime is the commit's author time.
	CommitTime time.Time

	repo    *repo
	maxSize int64
	entries map[string]entry // clean slash path → entry; directories included
	dirs    []string
	files   []string
}

// Snapshot resolves revision and returns the tree at that commit. Trees are
// cached in memory by commit.
func (c *Cache) Snapshot(ctx context.Context, repoURL, revision string) (*Snapshot, error) {
	sha, err := c.Resolve(ctx, repoURL, revision)
	if err != nil {
		return nil, err
	}
	key := repoURL + "@" + sha
	c.snapMu.Lock()
	if s, ok := c.snapshots[key]; ok {
		c.snapMu.Unlock()
		return s, nil
	}
	c.snapMu.Unlock()

	r, err := c.repo(repoURL)
	if err != nil {
		return nil, err
	}
	s, err := r.snapshot(sha, c.opts.MaxFileSize)
	if err != nil {
		return nil, err
	}
	s.URL = repoURL

	c.snapMu.Lock()
	defer c.snapMu.Unlock()
	if _, ok := c.snapshots[key]; !ok {
		c.snapshots[key] = s
		c.snapOrder = append(c.snapOrder, key)
		if len(c.snapOrder) > snapshotCacheSize {
			delete(c.snapshots, c.snapOrder[0])
			c.snapOrder = c.snapOrder[1:]
		}
	}
	return s, nil
}

func (r *repo) snapshot(sha string, maxSize int64) (*Snapshot, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	commit, err := r.r.CommitObject(plumbing.NewHash(sha))
	if err != nil {
		return nil, fmt.Errorf("read commit %s of %s: %w", sha, r.url, err)
	}
	tree, err := commit.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of %s at %s: %w", r.url, sha, err)
	}
	s := &Snapshot{Revision: sha, CommitTime: commit.Author.When, repo: r, maxSize: maxSize, entries: map[string]entry{}}
	walker := object.NewTreeWalker(tree, true, nil)
	defer walker.Close()
	for {
		name, e, err := walker.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("walk tree of %s at %s: %w", r.url, sha, err)
		}
		switch e.Mode {
		case filemode.Dir:
			s.dirs = append(s.dirs, name)
		case filemode.Regular, filemode.Executable, filemode.Deprecated, filemode.Symlink:
			s.files = append(s.files, name)
		default: // submodules are not followed
			continue
		}
		s.entries[name] = entry{mode: e.Mode, hash: e.Hash}
	}
	sort.Strings(s.dirs)
	sort.Strings(s.files)
	return s, nil
}

// Dirs lists every directory of the tree (not the root), sorted.
func (s *Snapshot) Dirs() []string { return s.dirs }

// Files lists every file and symlink of the tree, sorted.
func (s *Snapshot) Files() []string { return s.files }

// CleanPath validates a repository-relative path: no absolute paths and no
// ".." segments.
func CleanPath(p string) (string, error) {
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return "", fmt.Errorf("%q: %w: use a path relative to the repository root", p, ErrEscapesRepo)
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == ".." {
			return "", fmt.Errorf("%q: %w: '..' is not allowed", p, ErrEscapesRepo)
		}
	}
	c := path.Clean(p)
	if c == "." {
		c = ""
	}
	return c, nil
}

// Resolve follows symlinks in p (which may traverse symlinked directories)
// and returns the real path and its kind. A symlink that leads outside the
// repository is an error.
func (s *Snapshot) Resolve(p string) (string, Kind, error) {
	clean, err := CleanPath(p)
	if err != nil {
		return "", KindNone, err
	}
	if clean == "" {
		return "", KindDir, nil
	}
	pending := strings.Split(clean, "/")
	var done []string
	for hops := 0; len(pending) > 0; {
		next := pending[0]
		pending = pending[1:]
		cur := path.Join(append(append([]string{}, done...), next)...)
		e, ok := s.entries[cur]
		if !ok {
			return "", KindNone, nil
		}
		if e.mode != filemode.Symlink {
			done = append(done, next)
			if e.mode != filemode.Dir && len(pending) > 0 {
				return "", KindNone, nil // a file used as a directory
			}
			continue
		}
		hops++
		if hops > 40 {
			return "", KindNone, fmt.Errorf("%q: too many levels of symlinks", p)
		}
		target, err := s.blob(e, 4096)
		if err != nil {
			return "", KindNone, fmt.Errorf("read symlink %s: %w", cur, err)
		}
		t := string(target)
		if strings.HasPrefix(t, "/") {
			return "", KindNone, fmt.Errorf("%q: symlink %s -> %s: %w", p, cur, t, ErrEscapesRepo)
		}
		joined := path.Join(path.Join(done...), t) // Clean resolves ".."
		if joined == ".." || strings.HasPrefix(joined, "../") {
			return "", KindNone, fmt.Errorf("%q: symlink %s -> %s: %w", p, cur, t, ErrEscapesRepo)
		}
		done = nil
		var rest []string
		if joined != "." {
			rest = strings.Split(joined, "/")
		}
		pending = append(rest, pending...)
	}
	real := path.Join(done...)
	if real == "" {
		return "", KindDir, nil
	}
	if s.entries[real].mode == filemode.Dir {
		return real, KindDir, nil
	}
	return real, KindFile, nil
}

// ReadFile reads a file at p, following symlinks inside the repository. It
// refuses symlinks that leave the repository and files over the size cap.
func (s *Snapshot) ReadFile(p string) ([]byte, error) {
	real, kind, err := s.Resolve(p)
	if err != nil {
		return nil, err
	}
	switch kind {
	case KindNone:
		return nil, fmt.Errorf("read %s in %s at %s: no such file", p, s.URL, ShortSHA(s.Revision))
	case KindDir:
		return nil, fmt.Errorf("read %s in %s at %s: is a directory", p, s.URL, ShortSHA(s.Revision))
	}
	raw, err := s.blob(s.entries[real], s.maxSize)
	if err != nil {
		return nil, fmt.Errorf("read %s in %s at %s: %w", p, s.URL, ShortSHA(s.Revision), err)
	}
	return raw, nil
}

func (s *Snapshot) blob(e entry, max int64) ([]byte, error) {
	s.repo.mu.RLock()
	defer s.repo.mu.RUnlock()
	b, err := s.repo.r.BlobObject(e.hash)
	if err != nil {
		return nil, err
	}
	if b.Size > max {
		return nil, fmt.Errorf("%w: %d bytes, the limit is %d", ErrTooLarge, b.Size, max)
	}
	rd, err := b.Reader()
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	return io.ReadAll(io.LimitReader(rd, max+1))
}

// ShortSHA is the 7-character form of a commit SHA, for messages.
func ShortSHA(sha string) string {
	if len(sha) > 7 {
		return sha[:7]
	}
	return sha
}

// IsSymlink reports whether p is itself a symbolic link in the tree.
func (s *Snapshot) IsSymlink(p string) bool {
	e, ok := s.entries[p]
	return ok && e.mode == filemode.Symlink
}

// LocalSnapshot is the tree of a commit already in the cache, read without
// any network access (the agent's render sandbox reads the cache this way).
func (c *Cache) LocalSnapshot(repoURL, sha string) (*Snapshot, error) {
	if !shaPattern.MatchString(sha) {
		return nil, fmt.Errorf("not a commit SHA: %q", sha)
	}
	if err := validateURL(repoURL, c.opts.AllowLoopback); err != nil {
		return nil, err
	}
	if _, err := os.Stat(c.repoDir(repoURL)); err != nil {
		return nil, fmt.Errorf("%s is not in the cache: %w", RedactURL(repoURL), err)
	}
	r, err := c.repo(repoURL)
	if err != nil {
		return nil, err
	}
	s, err := r.snapshot(sha, c.opts.MaxFileSize)
	if err != nil {
		return nil, err
	}
	s.URL = repoURL
	return s, nil
}
