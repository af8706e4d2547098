package agent

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/log"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

// prune deletes what left Git (applied.Diff decides), when automated
// prune is on and this sync applied; otherwise what left Git stays, is
// still recorded, and the Application is OutOfSync. The record is saved
// after every apply, and on the first sync.
func (r *Reconciler) prune(ctx context.Context, s *syncState) (bool, error) {
	wanted := make([]applied.Ref, 0, len(s.results))
	var present []applied.Ref
	for _, res := range s.results {
		wanted = append(wanted, res.Ref)
		if res.Live != nil {
			present = append(present, res.Ref)
		}
	}
	next, gone := applied.Diff(s.prev, wanted, present)
	s.gone = gone
	if len(gone) > 0 {
		if s.prunes && s.apply {
			deleted, kept, err := deleteApplied(ctx, r.Client, s.app.Name, gone)
			next = append(next, kept...)
			for _, d := range deleted {
				log.FromContext(ctx).Info("Pruned", "object", d.String())
			}
			if err != nil {
				s.out.syncErr = err.Error()
			}
		} else {
			next = append(next, gone...)
			s.out.syncStatus = flotillav1.SyncStatusOutOfSync
		}
	}
	if s.apply || len(s.prev) == 0 {
		if err := r.record.Save(ctx, s.app, next); err != nil {
			return false, err
		}
	}
	return false, nil
}
