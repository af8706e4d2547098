// Package applied is the agent's record of the objects an Application
// applied, as pure data: references with the UID the apiserver gave each,
// and Diff, which decides what to keep recording and what left Git. The
// agent stores the record (a ConfigMap beside the Application) and prunes;
// the decision lives here, testable without an apiserver.
package applied

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Ref identifies an applied object.
type Ref struct {
	Group     string `json:"group,omitempty"`
	Version   string `json:"version"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
	UID       string `json:"uid,omitempty"`
}

// Key identifies the object regardless of version and UID.
func (r Ref) Key() string { return r.Group + "/" + r.Kind + "/" + r.Namespace + "/" + r.Name }

func (r Ref) String() string {
	if r.Namespace == "" {
		return r.Kind + " " + r.Name
	}
	return r.Kind + " " + r.Namespace + "/" + r.Name
}

// GVK of the object.
func (r Ref) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: r.Group, Version: r.Version, Kind: r.Kind}
}

// RefOf references an object (with its UID, when it has one).
func RefOf(u *unstructured.Unstructured) Ref {
	gvk := u.GroupVersionKind()
	return Ref{Group: gvk.Group, Version: gvk.Version, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName(), UID: string(u.GetUID())}
}

// Diff compares the record of the last sync (prev) with this one: wanted
// are every object Git holds now, present those of them that exist on the
// cluster (with their UIDs). next is what to record: the present objects,
// plus recorded ones Git still wants but that are not there now (so they
// are pruned when they leave Git later). gone are recorded objects Git no
// longer wants: candidates to prune.
func Diff(prev, wanted, present []Ref) (next, gone []Ref) {
	isWanted := make(map[string]bool, len(wanted))
	for _, r := range wanted {
		isWanted[r.Key()] = true
	}
	isPresent := make(map[string]bool, len(present))
	next = append(make([]Ref, 0, len(present)), present...)
	for _, r := range present {
		isPresent[r.Key()] = true
	}
	for _, r := range prev {
		switch {
		case !isWanted[r.Key()]:
			gone = append(gone, r)
		case !isPresent[r.Key()]:
			next = append(next, r)
		}
	}
	return next, gone
}

// Sort orders refs by key, so a stored record does not change with the
// order objects were applied in.
func Sort(refs []Ref) {
	sort.Slice(refs, func(i, j int) bool { return refs[i].Key() < refs[j].Key() })
}
