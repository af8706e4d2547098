package applicationset

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sync"
	"time"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
)

// Revisions resolves (repoURL, targetRevision) to a commit on the hub,
// once per poll interval for every set that uses the pair; the hub pins
// each Application to that commit, so the whole fleet runs one commit of a
// branch and agents never resolve branches on their own.
type Revisions struct {
	Git *git.Cache
	// TTL is how long a resolution stands (the poll interval).
	TTL time.Duration

	mu sync.Mutex
	m  map[revisionKey]resolved
}

type revisionKey struct{ url, revision string }

type resolved struct {
	sha string
	err error
	at  time.Time
}

// failedFor is how long a failed resolution stands: an unreachable
// repository is not asked again by every reconcile of every set.
const failedFor = 15 * time.Second

var fullSHA = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Resolve is the commit revision names in url: from the last resolution
// younger than TTL unless force, else asked of the repository now.
func (r *Revisions) Resolve(ctx context.Context, url, revision string, force bool) (string, error) {
	if fullSHA.MatchString(revision) {
		return revision, nil
	}
	k := revisionKey{url, revision}
	r.mu.Lock()
	if r.m == nil {
		r.m = map[revisionKey]resolved{}
	}
	e, ok := r.m[k]
	r.mu.Unlock()
	if ok && !force && ((e.err == nil && time.Since(e.at) < r.TTL) || (e.err != nil && time.Since(e.at) < min(failedFor, r.TTL))) {
		return e.sha, e.err
	}
	sha, err := r.Git.Resolve(ctx, url, revision)
	r.mu.Lock()
	defer r.mu.Unlock()
	for key, old := range r.m { // what no set asked for in a while goes
		if time.Since(old.at) > 10*r.TTL {
			delete(r.m, key)
		}
	}
	r.m[k] = resolved{sha: sha, err: err, at: time.Now()}
	return sha, err
}

// pin sets each Git-sourced Application's pinnedCommit. A revision that
// cannot be resolved keeps the commit the Application was pinned to (no
// Application moves on a Git outage); the error is returned for the set's
// Event. resolved lists the distinct commits resolved now.
func (r *Reconciler) pin(ctx context.Context, apps []*flotillav1.Application, existing map[string]*flotillav1.Application, force bool) (resolved []string, _ error) {
	var firstErr error
	for _, a := range apps {
		src := &a.Spec.Source
		if src.Chart != "" {
			continue
		}
		sha, err := r.Revisions.Resolve(ctx, src.RepoURL, src.TargetRevision, force)
		if err != nil {
			if old := existing[a.Name]; old != nil {
				sha = old.Spec.Source.PinnedCommit
			}
			if firstErr == nil {
				firstErr = fmt.Errorf("resolve %s of %s: %w", orHEAD(src.TargetRevision), git.RedactURL(src.RepoURL), err)
			}
		} else if !slices.Contains(resolved, sha) {
			resolved = append(resolved, sha)
		}
		src.PinnedCommit = sha
	}
	return resolved, firstErr
}

func orHEAD(rev string) string {
	if rev == "" {
		return "HEAD"
	}
	return rev
}

// refreshRequested reports whether the set carries a refresh request this
// controller has not handled yet (then revisions are resolved again now).
func (r *Reconciler) refreshRequested(set *flotillav1.ApplicationSet) bool {
	v := set.Annotations[flotillav1.AnnotationRefresh]
	if v == "" {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.refreshed == nil {
		r.refreshed = map[string]string{}
	}
	k := set.Namespace + "/" + set.Name
	if r.refreshed[k] == v {
		return false
	}
	r.refreshed[k] = v
	return true
}
