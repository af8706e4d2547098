package kube

import (
	"unique"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// Intern returns the canonical copy of s. Objects decoded from a watch
// carry their own copy of every string; a cache of thousands of
// Applications holds the same namespace, label keys and values, owner,
// repository URL and condition reasons thousands of times over.
func Intern(s string) string {
	if s == "" {
		return s
	}
	return unique.Make(s).Value()
}

// InternMeta interns an object's repeated metadata strings in place.
func InternMeta(o metav1.Object) {
	o.SetNamespace(Intern(o.GetNamespace()))
	o.SetLabels(internMap(o.GetLabels()))
	o.SetAnnotations(internMap(o.GetAnnotations()))
	fin := o.GetFinalizers()
	for i := range fin {
		fin[i] = Intern(fin[i])
	}
	refs := o.GetOwnerReferences()
	for i := range refs {
		r := &refs[i]
		r.APIVersion, r.Kind, r.Name, r.UID = Intern(r.APIVersion), Intern(r.Kind), Intern(r.Name), types.UID(Intern(string(r.UID)))
	}
	mf := o.GetManagedFields()
	for i := range mf {
		m := &mf[i]
		m.Manager, m.APIVersion, m.FieldsType, m.Subresource = Intern(m.Manager), Intern(m.APIVersion), Intern(m.FieldsType), Intern(m.Subresource)
		m.Operation = metav1.ManagedFieldsOperationType(Intern(string(m.Operation)))
	}
}

func internMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return m
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[Intern(k)] = Intern(v)
	}
	return out
}

// InternApplication interns an Application's metadata and the spec and
// status strings that repeat across a fleet.
func InternApplication(a *flotillav1.Application) {
	a.APIVersion, a.Kind = Intern(a.APIVersion), Intern(a.Kind)
	InternMeta(a)
	s := &a.Spec
	s.Source.RepoURL, s.Source.TargetRevision, s.Source.Path = Intern(s.Source.RepoURL), Intern(s.Source.TargetRevision), Intern(s.Source.Path)
	s.Destination.Cluster, s.Destination.Namespace = Intern(s.Destination.Cluster), Intern(s.Destination.Namespace)
	st := &a.Status
	for i := range st.Conditions {
		c := &st.Conditions[i]
		c.Type, c.Reason = Intern(c.Type), Intern(c.Reason)
		c.Status = metav1.ConditionStatus(Intern(string(c.Status)))
	}
	st.Sync.Status = flotillav1.SyncStatusCode(Intern(string(st.Sync.Status)))
	st.Sync.Revision = Intern(st.Sync.Revision)
	st.Health.Status = flotillav1.HealthStatusCode(Intern(string(st.Health.Status)))
	for i := range st.Resources {
		r := &st.Resources[i]
		r.Group, r.Version, r.Kind, r.Namespace = Intern(r.Group), Intern(r.Version), Intern(r.Kind), Intern(r.Namespace)
		r.Health, r.Sync = flotillav1.HealthStatusCode(Intern(string(r.Health))), flotillav1.SyncStatusCode(Intern(string(r.Sync)))
	}
}

// SlimCache is the hub's cache transform: managedFields keep manager,
// operation and time only (TrimManagedFields), and Applications share
// their repeated strings (InternApplication).
func SlimCache(obj any) (any, error) {
	if _, err := TrimManagedFields(obj); err != nil {
		return nil, err
	}
	switch o := obj.(type) {
	case *flotillav1.Application:
		InternApplication(o)
	case metav1.Object:
		InternMeta(o)
	}
	return obj, nil
}
