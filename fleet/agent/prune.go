package agent

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"sigs.k8s.io/controller-runtime/pkg/log"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

// propagation is the Application's PrunePropagationPolicy (default
// background).
func propagation(app *flotillav1.Application) metav1.DeletionPropagation {
	if p := app.Spec.SyncPolicy; p != nil {
		for _, o := range p.SyncOptions {
			if v, ok := strings.CutPrefix(o, "PrunePropagationPolicy="); ok {
				switch strings.ToLower(v) {
				case "foreground":
					return metav1.DeletePropagationForeground
				case "orphan":
					return metav1.DeletePropagationOrphan
				}
			}
		}
	}
	return metav1.DeletePropagationBackground
}

// allHealthy reports whether every object of this sync is applied and
// Healthy.
func allHealthy(results []Result) bool {
	for _, res := range results {
		if res.Err != nil || res.Live == nil {
			return false
		}
		if h, _ := Health(res.Live); h != flotillav1.HealthHealthy {
			return false
		}
	}
	return true
}

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
	m := s.memo
	pruned := false
	if len(gone) > 0 {
		if s.prunes && (s.apply || m.prunePending) && s.hasOption("PruneLast=true") && !allHealthy(s.results) {
			// PruneLast: what left Git goes once everything else is
			// applied and Healthy (the health checks that follow prune it).
			m.prunePending = true
			next = append(next, gone...)
		} else if s.prunes && (s.apply || m.prunePending) {
			m.prunePending, pruned = false, true
			deleted, kept, err := deleteApplied(ctx, s.writer, s.app.Name, gone, deletion{policy: propagation(s.app), unless: "Prune=false"})
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
	if s.apply || len(s.prev) == 0 || pruned {
		if err := r.record.Save(ctx, s.app, next); err != nil {
			return false, err
		}
	}
	return false, nil
}
