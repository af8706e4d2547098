package agent

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
)

// LabelValue is a label-safe form of an Application name.
func LabelValue(app string) string {
	if len(app) <= 63 {
		return app
	}
	sum := sha256.Sum256([]byte(app))
	return app[:50] + "-" + hex.EncodeToString(sum[:6])
}

// Result is what happened to one object.
type Result struct {
	Ref  applied.Ref
	Live *unstructured.Unstructured // the object after apply, nil on error
	Err  error
	// ReadErr is why the live object could not be read (Forbidden, a
	// timeout): its health is then Unknown, never "not found".
	ReadErr error
}

// Applier applies objects with server-side apply as flotilla-agent.
type Applier struct {
	Client client.Client
	// CRDTimeout bounds the wait for a CRD to be Established (default 30s).
	CRDTimeout time.Duration
	// Check refuses an object before it is applied (Project rules, the
	// spoke's policy); nil refuses nothing.
	Check func(o *unstructured.Unstructured, namespaced bool) error
}

// Prepare sets namespaces (default for namespaced objects, none for cluster
// scoped ones) and the Application label and annotation. An object whose
// kind the apiserver does not know is returned with an error.
func (a *Applier) Prepare(objs []*unstructured.Unstructured, app, defaultNS string) map[*unstructured.Unstructured]error {
	errs := map[*unstructured.Unstructured]error{}
	crdKinds := map[schema.GroupKind]bool{}
	for _, o := range objs {
		if o.GroupVersionKind().GroupKind() == (schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}) {
			g, _, _ := unstructured.NestedString(o.Object, "spec", "group")
			k, _, _ := unstructured.NestedString(o.Object, "spec", "names", "kind")
			crdKinds[schema.GroupKind{Group: g, Kind: k}] = true
		}
	}
	for _, o := range objs {
		labels := o.GetLabels()
		if labels == nil {
			labels = map[string]string{}
		}
		labels[flotillav1.LabelApplication] = LabelValue(app)
		o.SetLabels(labels)
		ann := o.GetAnnotations()
		if ann == nil {
			ann = map[string]string{}
		}
		ann[flotillav1.AnnotationApplication] = app
		o.SetAnnotations(ann)
		if err := validIdentity(o); err != nil {
			errs[o] = err
			continue
		}

		namespaced, err := a.isNamespaced(o.GroupVersionKind())
		if err != nil {
			if crdKinds[o.GroupVersionKind().GroupKind()] {
				continue // decided after its CRD is applied
			}
			errs[o] = err
			continue
		}
		setNamespace(o, namespaced, defaultNS)
		if a.Check != nil {
			if err := a.Check(o, namespaced); err != nil {
				errs[o] = err
			}
		}
	}
	return errs
}

// validIdentity refuses names no apiserver accepts, before they reach the
// apiserver or the Application's status (whose fields have the same
// limits: one over-long name there would make every status write fail).
func validIdentity(o *unstructured.Unstructured) error {
	gvk := o.GroupVersionKind()
	for _, f := range []struct {
		field, value string
		max          int
	}{{"metadata.name", o.GetName(), 253}, {"metadata.namespace", o.GetNamespace(), 63}, {"kind", gvk.Kind, 63},
		{"apiVersion group", gvk.Group, 253}, {"apiVersion version", gvk.Version, 63}} {
		if len(f.value) > f.max {
			return fmt.Errorf("invalid object: %s is %d characters long, at most %d are allowed", f.field, len(f.value), f.max)
		}
	}
	return nil
}

func setNamespace(o *unstructured.Unstructured, namespaced bool, defaultNS string) {
	switch {
	case !namespaced:
		o.SetNamespace("")
	case o.GetNamespace() == "":
		o.SetNamespace(defaultNS)
	}
}

func (a *Applier) isNamespaced(gvk schema.GroupVersionKind) (bool, error) {
	m, err := a.Client.RESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		if meta.IsNoMatchError(err) {
			return false, fmt.Errorf("unknown kind %s: the cluster serves no such API (is its CRD installed?)", gvk)
		}
		return false, err
	}
	return m.Scope.Name() == meta.RESTScopeNameNamespace, nil
}

// Apply applies objects in order: Namespaces and CRDs first (waiting for
// CRDs to be Established), then the rest. One rejected object does not
// stop the others.
func (a *Applier) Apply(ctx context.Context, objs []*unstructured.Unstructured, app, defaultNS string, adopt bool, ignore ignoreRules) []Result {
	prepErrs := a.Prepare(objs, app, defaultNS)
	first, rest := []*unstructured.Unstructured{}, []*unstructured.Unstructured{}
	for _, o := range objs {
		switch o.GetKind() {
		case "Namespace", "CustomResourceDefinition":
			first = append(first, o)
		default:
			rest = append(rest, o)
		}
	}
	results := make([]Result, 0, len(objs))
	var crds []*unstructured.Unstructured
	for _, o := range first {
		r := a.applyOne(ctx, o, app, adopt, ignore, prepErrs[o])
		results = append(results, r)
		if r.Err == nil && o.GetKind() == "CustomResourceDefinition" {
			crds = append(crds, o)
		}
	}
	if len(crds) > 0 {
		a.waitEstablished(ctx, crds)
		for _, o := range rest {
			if prepErrs[o] != nil {
				continue
			}
			if namespaced, err := a.isNamespaced(o.GroupVersionKind()); err == nil {
				setNamespace(o, namespaced, defaultNS)
				if a.Check != nil {
					if err := a.Check(o, namespaced); err != nil {
						prepErrs[o] = err
					}
				}
			} else {
				prepErrs[o] = err
			}
		}
	}
	for _, o := range rest {
		if _, known := prepErrs[o]; !known {
			if _, err := a.isNamespaced(o.GroupVersionKind()); err != nil {
				prepErrs[o] = err
			}
		}
		results = append(results, a.applyOne(ctx, o, app, adopt, ignore, prepErrs[o]))
	}
	return results
}

// applyOne applies an object the Application owns or may take over (see
// ownership); any other is refused.
func (a *Applier) applyOne(ctx context.Context, o *unstructured.Unstructured, app string, adopt bool, ignore ignoreRules, prepErr error) Result {
	ref := applied.RefOf(o)
	if prepErr != nil {
		return Result{Ref: ref, Err: prepErr}
	}
	existing := &unstructured.Unstructured{}
	existing.SetGroupVersionKind(o.GroupVersionKind())
	switch err := a.Client.Get(ctx, client.ObjectKeyFromObject(o), existing); {
	case apierrors.IsNotFound(err):
		existing = nil
	case err != nil:
		return Result{Ref: ref, Err: apiMessage(err)}
	}
	if err := ownership(existing, ref, app, adopt); err != nil {
		return Result{Ref: ref, Err: err}
	}
	live := ignore.respect(o, existing).DeepCopy()
	if err := a.Client.Patch(ctx, live, client.Apply, client.FieldOwner(flotillav1.FieldManagerAgent), client.ForceOwnership); err != nil {
		return Result{Ref: ref, Err: apiMessage(err)}
	}
	ref.UID = string(live.GetUID())
	return Result{Ref: ref, Live: live}
}

// apiMessage keeps the apiserver's own words.
func apiMessage(err error) error {
	var status apierrors.APIStatus
	if s, ok := err.(apierrors.APIStatus); ok {
		status = s
		return fmt.Errorf("%s", status.Status().Message)
	}
	return err
}

func (a *Applier) waitEstablished(ctx context.Context, crds []*unstructured.Unstructured) {
	timeout := a.CRDTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	deadline := time.Now().Add(timeout)
	for _, c := range crds {
		for time.Now().Before(deadline) {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := a.Client.Get(ctx, types.NamespacedName{Name: c.GetName()}, crd); err == nil && established(crd) {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	if m, ok := a.Client.RESTMapper().(interface{ Reset() }); ok {
		m.Reset()
	}
}

func established(crd *apiextensionsv1.CustomResourceDefinition) bool {
	for _, c := range crd.Status.Conditions {
		if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
			return true
		}
	}
	return false
}

// applyObjects applies this sync's objects when checkDrift decided so;
// otherwise it reads them as they are. Either way the agent then watches
// their kinds.
func (r *Reconciler) applyObjects(ctx context.Context, s *syncState) (bool, error) {
	if !s.apply {
		s.results = r.observe(ctx, s)
		r.watcher.ensure(ctx, s.results)
		return false, nil
	}
	if s.hasOption("CreateNamespace=true") && s.app.Spec.Destination.Namespace != "" {
		if err := r.ensureNamespace(ctx, s.writer, s.app.Name, s.app.Spec.Destination.Namespace); err != nil {
			return false, err
		}
	}
	if r.preSyncHooks(ctx, s) {
		return true, nil
	}
	s.results = s.applier.Apply(ctx, s.objs, s.app.Name, s.defaultNS, s.hasOption(SyncOptionAdoptExisting), s.app.Spec.IgnoreDifferences)
	s.out.applied = true
	m := s.memo
	m.applied, m.appliedAt, m.errs, m.driftAt, m.drifted = true, time.Now(), map[string]error{}, time.Now(), nil
	for _, res := range s.results {
		if res.Err != nil {
			m.errs[res.Ref.Key()] = res.Err
		}
	}
	r.watcher.ensure(ctx, s.results)
	return false, nil
}

// observe reads this sync's objects without applying them; an object the
// last apply could not write keeps that apply's error until it exists.
func (r *Reconciler) observe(ctx context.Context, s *syncState) []Result {
	results := make([]Result, 0, len(s.objs))
	for _, o := range s.objs {
		res := Result{Ref: applied.RefOf(o), Err: s.prepErrs[o]}
		if res.Err == nil {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(o.GroupVersionKind())
			err := r.Client.Get(ctx, client.ObjectKeyFromObject(o), live)
			switch {
			case err == nil && live.GetAnnotations()[flotillav1.AnnotationApplication] == s.app.Name:
				res.Live = live
				res.Ref.UID = string(live.GetUID())
			case err == nil: // someone else's: not this Application's to report or prune
				if res.Err = ownership(live, res.Ref, s.app.Name, false); res.Err == nil {
					res.Err = fmt.Errorf("%s exists and may be taken over (%s=true), but this Application has not applied it yet", res.Ref, flotillav1.AnnotationAdopt)
				}
			case s.memo.errs[res.Ref.Key()] != nil:
				res.Err = s.memo.errs[res.Ref.Key()]
			case !apierrors.IsNotFound(err):
				res.ReadErr = err
			}
		}
		results = append(results, res)
	}
	return results
}

// ensureNamespace creates the destination namespace when it is missing
// (CreateNamespace=true), as created by app; an existing one is left as it
// is, whoever made it.
func (r *Reconciler) ensureNamespace(ctx context.Context, w client.Client, app, name string) error {
	if err := r.Client.Get(ctx, client.ObjectKey{Name: name}, &corev1.Namespace{}); err == nil || !apierrors.IsNotFound(err) {
		return client.IgnoreNotFound(err)
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Annotations: map[string]string{flotillav1.AnnotationApplication: app}}}
	if err := w.Create(ctx, ns, client.FieldOwner(flotillav1.FieldManagerAgent)); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("create namespace %s (CreateNamespace=true): %w", name, err)
	}
	return nil
}
