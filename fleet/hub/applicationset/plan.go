package applicationset

import (
	"context"
	"fmt"
	"sort"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Plan is the writes that converge a set's hub Applications, decided by
// PlanWrites: the controller carries it out, `flotilla diff` prints it.
type Plan struct {
	// Create and Update hold desired Applications; Delete holds existing ones.
	Create, Update, Delete []*flotillav1.Application
	// HeldUpdates are desired Applications that differ from the existing
	// ones but applicationsSync forbids updating.
	HeldUpdates []*flotillav1.Application
	// HeldDeletes are existing Applications the set no longer generates
	// but applicationsSync forbids deleting.
	HeldDeletes []*flotillav1.Application
	// Unchanged counts Applications already as desired.
	Unchanged int
	// DeletionsHeld: Delete would have removed more of the set's
	// Applications than syncPolicy.maxDeletePercent allows unconfirmed;
	// they are in HeldDeletes instead.
	DeletionsHeld bool
}

// Changes counts the writes.
func (p *Plan) Changes() int { return len(p.Create) + len(p.Update) + len(p.Delete) }

// Kept counts the Applications left as they are: unchanged or held.
func (p *Plan) Kept() int { return p.Unchanged + len(p.HeldUpdates) + len(p.HeldDeletes) }

// Summary says what the plan does, for conditions and Events.
func (p *Plan) Summary() string {
	s := fmt.Sprintf("%d created, %d updated, %d deleted, %d unchanged", len(p.Create), len(p.Update), len(p.Delete), p.Kept())
	if n := len(p.HeldUpdates); n > 0 {
		s += fmt.Sprintf("; %d out of date but not updated (applicationsSync forbids updates)", n)
	}
	if p.DeletionsHeld {
		s += "; " + p.HeldMessage()
	}
	return s
}

// Owned picks the Applications the set controls (owner reference with its
// UID) out of a list, by name.
func Owned(set *flotillav1.ApplicationSet, apps []flotillav1.Application) map[string]*flotillav1.Application {
	out := make(map[string]*flotillav1.Application, len(apps))
	for i := range apps {
		if app := &apps[i]; metav1.IsControlledBy(app, set) {
			out[app.Name] = app
		}
	}
	return out
}

// ClusterGone reports whether a MemberCluster no longer exists (or is
// being deleted): deleting the Applications of a cluster that is gone is
// never held. nil means every cluster exists.
type ClusterGone func(name string) bool

// PlanWrites compares desired Applications with the existing ones the set
// owns, per the set's applicationsSync policy, and holds a mass deletion
// (syncPolicy.maxDeletePercent) unless the set confirms it.
func PlanWrites(set *flotillav1.ApplicationSet, desired []*flotillav1.Application, existing map[string]*flotillav1.Application, gone ClusterGone) *Plan {
	policy := flotillav1.ApplicationsSyncSync
	if set.Spec.SyncPolicy != nil && set.Spec.SyncPolicy.ApplicationsSync != "" {
		policy = set.Spec.SyncPolicy.ApplicationsSync
	}
	canUpdate := policy == flotillav1.ApplicationsSyncSync || policy == flotillav1.ApplicationsSyncCreateUpdate
	canDelete := policy == flotillav1.ApplicationsSyncSync || policy == flotillav1.ApplicationsSyncCreateDelete
	p := &Plan{}
	want := make(map[string]bool, len(desired))
	for _, d := range desired {
		want[d.Name] = true
		cur, ok := existing[d.Name]
		switch {
		case !ok:
			p.Create = append(p.Create, d)
		case UpToDate(d, cur):
			p.Unchanged++
		case canUpdate:
			p.Update = append(p.Update, d)
		default:
			p.HeldUpdates = append(p.HeldUpdates, d)
		}
	}
	names := make([]string, 0, len(existing))
	for name := range existing {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		switch {
		case want[name]:
		case canDelete:
			p.Delete = append(p.Delete, existing[name])
		default:
			p.HeldDeletes = append(p.HeldDeletes, existing[name])
		}
	}
	p.holdMassDeletion(set, len(existing), gone)
	return p
}

// holdMassDeletion moves Delete to HeldDeletes when it removes more of the
// set's Applications than allowed. Applications of clusters that are gone
// are deleted regardless and do not count.
func (p *Plan) holdMassDeletion(set *flotillav1.ApplicationSet, total int, gone ClusterGone) {
	var keep, hold []*flotillav1.Application
	for _, a := range p.Delete {
		if gone != nil && gone(a.Spec.Destination.Cluster) {
			keep = append(keep, a)
		} else {
			hold = append(hold, a)
		}
	}
	if tooManyDeletes(set, len(hold), total-len(keep)) {
		p.Delete, p.HeldDeletes, p.DeletionsHeld = keep, append(p.HeldDeletes, hold...), true
	}
}

// tooManyDeletes: deleting n of total Applications needs confirmation.
func tooManyDeletes(set *flotillav1.ApplicationSet, n, total int) bool {
	if n == 0 || set.Annotations[flotillav1.AnnotationAllowDeletes] == "true" {
		return false
	}
	limit := int32(100)
	if sp := set.Spec.SyncPolicy; sp != nil && sp.MaxDeletePercent != nil {
		limit = *sp.MaxDeletePercent
	}
	if limit >= 100 {
		return n == total
	}
	return int32(n*100) > limit*int32(total)
}

// HeldMessage says why deletions wait and how to let them happen.
func (p *Plan) HeldMessage() string {
	return fmt.Sprintf("%d of the set's Applications would be deleted, more than syncPolicy.maxDeletePercent allows without confirmation; nothing was deleted: "+
		"check the generators (an emptied list, a renamed directory, a relabelled cluster?), then annotate the set %s=true to confirm", len(p.HeldDeletes), flotillav1.AnnotationAllowDeletes)
}

// UpToDate compares what the hub owns: spec, and labels/annotations it sets.
func UpToDate(desired, cur *flotillav1.Application) bool {
	return kube.Converged(desired.Spec, cur.Spec, desired, cur)
}

// MemberClusterGone reads MemberClusters through r: one that is missing or
// being deleted is gone.
func MemberClusterGone(ctx context.Context, r client.Reader) ClusterGone {
	return func(name string) bool {
		mc := &flotillav1.MemberCluster{}
		err := r.Get(ctx, client.ObjectKey{Name: name}, mc)
		return apierrors.IsNotFound(err) || (err == nil && !mc.DeletionTimestamp.IsZero())
	}
}
