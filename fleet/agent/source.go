package agent

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
)

// fetchSource reads the Application's commit from Git when the spec, the
// sync interval or a refresh asks for it. The memo's render stands while
// the generation and commit are unchanged.
func (r *Reconciler) fetchSource(ctx context.Context, s *syncState) (bool, error) {
	m := r.memos.get(s.key)
	current := m != nil && m.generation == s.app.Generation
	if current && !s.refresh && time.Since(m.checkedAt) < r.SyncInterval {
		if f := m.failure; f != nil && f.credentials == r.credentials.Load() {
			// The last fetch or render failed: that is the news until the
			// next check, not the older render that still stands.
			s.out = notSynced(f.reason, f.err, f.revision, f.requeue)
			return true, nil
		}
		s.memo = m
		return false, nil
	}
	src := s.app.Spec.Source
	var revision string
	var err error
	if src.Chart != "" {
		if s.chart, err = r.Charts.Fetch(ctx, src.RepoURL, src.Chart, src.TargetRevision); err == nil {
			revision = s.chart.Version
		}
	} else if s.snap, err = r.Git.Snapshot(ctx, src.RepoURL, gitRevision(src)); err == nil {
		revision = s.snap.Revision
	}
	if err != nil {
		s.out = notSynced(flotillav1.ReasonFetchFailed, err, "", 30*time.Second)
		if current {
			m.failure = &failure{reason: flotillav1.ReasonFetchFailed, err: err, requeue: 30 * time.Second, credentials: r.credentials.Load()}
		}
		return true, nil
	}
	if current && m.revision == revision {
		m.checkedAt, m.failure = time.Now(), nil
		s.memo, s.snap, s.chart = m, nil, nil
		return false, nil
	}
	return false, nil
}

// renderInput is the render of a freshly fetched commit or chart version.
func (r *Reconciler) renderInput(s *syncState) (RenderInput, string, time.Time) {
	in := RenderInput{Source: s.app.Spec.Source, Chart: s.chart, Capabilities: r.capabilities(),
		Release: HelmRelease{Name: releaseName(s.app), Namespace: s.defaultNS}}
	if s.chart != nil {
		return in, s.chart.Version, time.Time{}
	}
	in.Tree = s.snap
	return in, s.snap.Revision, s.snap.CommitTime
}

// releaseName is the hub Application's name (the spoke copy's name carries
// the hub namespace): what a user of `helm list` would expect to see.
func releaseName(app *flotillav1.Application) string {
	if n := app.Annotations[flotillav1.AnnotationHubName]; n != "" {
		return n
	}
	return app.Name
}

// renderSource renders a freshly fetched commit and remembers it.
func (r *Reconciler) renderSource(ctx context.Context, s *syncState) (bool, error) {
	if s.snap == nil && s.chart == nil {
		return false, nil
	}
	in, revision, commitTime := r.renderInput(s)
	objs, err := r.Renderer.Render(ctx, in)
	if err != nil {
		s.out = notSynced(flotillav1.ReasonRenderFailed, err, revision, r.SyncInterval)
		f := &failure{reason: flotillav1.ReasonRenderFailed, err: err, revision: revision, requeue: r.SyncInterval, credentials: r.credentials.Load()}
		if m := r.memos.get(s.key); m != nil && m.generation == s.app.Generation {
			m.failure, m.checkedAt = f, time.Now() // this commit is not rendered again before the next check
		}
		return true, nil
	}
	rendered, size, err := encodeRender(objs)
	if err != nil {
		return false, err
	}
	s.memo = &memo{generation: s.app.Generation, revision: revision, commitTime: commitTime, checkedAt: time.Now(), rendered: rendered, size: size}
	r.memos.put(s.key, s.memo)
	return false, nil
}

// prepare loads the record of the last sync and readies this sync's
// objects (namespaces, Application label). A render of nothing never
// prunes everything the Application applied.
func (r *Reconciler) prepare(ctx context.Context, s *syncState) (bool, error) {
	m := s.memo
	s.out = &outcome{revision: m.revision, commitTime: m.commitTime, syncStatus: flotillav1.SyncStatusSynced}
	prev, err := r.record.Load(ctx, s.app)
	if err != nil {
		return false, err
	}
	s.prev = prev
	if s.objs, err = m.objects(); err != nil {
		return false, err
	}
	s.objs, s.preHooks, s.postHooks = splitHooks(s.objs)
	if len(s.objs) == 0 && len(prev) > 0 {
		s.out.syncStatus = flotillav1.SyncStatusOutOfSync
		s.out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonEmptyRender,
			Message: fmt.Sprintf("%s renders no objects at %s: refusing to prune all %d applied objects; if you mean it, delete the Application",
				s.app.Spec.Source.Path, git.ShortSHA(m.revision), len(prev))}
		s.out.syncErr = s.out.synced.Message
		s.out.corrected = max(m.corrected, s.app.Status.DriftCorrections)
		return true, nil
	}
	s.prepErrs = s.applier.Prepare(s.objs, s.app.Name, s.defaultNS)
	return false, nil
}

// gitRevision is what the agent fetches: the commit the hub pinned, else
// the revision as written (an Application no hub manages).
func gitRevision(src flotillav1.ApplicationSource) string {
	if src.PinnedCommit != "" {
		return src.PinnedCommit
	}
	return src.TargetRevision
}
