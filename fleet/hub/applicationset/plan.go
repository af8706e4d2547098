package applicationset

import (
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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

// PlanWrites compares desired Applications with the existing ones the set
// owns, per the set's applicationsSync policy.
func PlanWrites(set *flotillav1.ApplicationSet, desired []*flotillav1.Application, existing map[string]*flotillav1.Application) *Plan {
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
	return p
}

// UpToDate compares what the hub owns: spec, and labels/annotations it sets.
func UpToDate(desired, cur *flotillav1.Application) bool {
	return kube.Converged(desired.Spec, cur.Spec, desired, cur)
}
