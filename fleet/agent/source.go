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
		if f := m.failure; f != nil {
			// The last fetch or render failed: that is the news until the
			// next check, not the older render that still stands.
			s.out = notSynced(f.reason, f.err, f.revision, f.requeue)
			return true, nil
		}
		s.memo = m
		return false, nil
	}
	snap, err := r.Git.Snapshot(ctx, s.app.Spec.Source.RepoURL, s.app.Spec.Source.TargetRevision)
	if err != nil {
		s.out = notSynced(flotillav1.ReasonFetchFailed, err, "", 30*time.Second)
		if current {
			m.failure = &failure{reason: flotillav1.ReasonFetchFailed, err: err, requeue: 30 * time.Second}
		}
		return true, nil
	}
	if current && m.revision == snap.Revision {
		m.checkedAt, m.failure = time.Now(), nil
		s.memo = m
		return false, nil
	}
	s.snap = snap
	return false, nil
}

// renderSource renders a freshly fetched commit and remembers it.
func (r *Reconciler) renderSource(ctx context.Context, s *syncState) (bool, error) {
	if s.snap == nil {
		return false, nil
	}
	objs, err := r.Renderer.Render(ctx, s.snap, s.app.Spec.Source)
	if err != nil {
		s.out = notSynced(flotillav1.ReasonRenderFailed, err, s.snap.Revision, r.SyncInterval)
		f := &failure{reason: flotillav1.ReasonRenderFailed, err: err, revision: s.snap.Revision, requeue: r.SyncInterval}
		if m := r.memos.get(s.key); m != nil && m.generation == s.app.Generation {
			m.failure, m.checkedAt = f, time.Now() // this commit is not rendered again before the next check
		}
		return true, nil
	}
	rendered, size, err := encodeRender(objs)
	if err != nil {
		return false, err
	}
	s.memo = &memo{generation: s.app.Generation, revision: s.snap.Revision, commitTime: s.snap.CommitTime, checkedAt: time.Now(), rendered: rendered, size: size}
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
	if len(s.objs) == 0 && len(prev) > 0 {
		s.out.syncStatus = flotillav1.SyncStatusOutOfSync
		s.out.synced = metav1.Condition{Type: flotillav1.ConditionSynced, Status: metav1.ConditionFalse, Reason: flotillav1.ReasonEmptyRender,
			Message: fmt.Sprintf("%s renders no objects at %s: refusing to prune all %d applied objects; if you mean it, delete the Application",
				s.app.Spec.Source.Path, git.ShortSHA(m.revision), len(prev))}
		s.out.syncErr = s.out.synced.Message
		s.out.corrected = max(m.corrected, s.app.Status.DriftCorrections)
		return true, nil
	}
	s.prepErrs = r.applier.Prepare(s.objs, s.app.Name, s.defaultNS)
	return false, nil
}
