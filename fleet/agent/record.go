package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent/applied"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// appliedRecord stores each Application's applied.Ref list in a ConfigMap
// next to it (owned by it), so that it survives agent restarts. The
// ConfigMap keeps the name it had when this was called the inventory.
type appliedRecord struct {
	Client client.Client
}

func recordName(app string) string { return "flotilla-inventory-" + LabelValue(app) }

// Load reads an Application's record (empty when none was saved).
func (rec appliedRecord) Load(ctx context.Context, app *flotillav1.Application) ([]applied.Ref, error) {
	cm := &corev1.ConfigMap{}
	err := rec.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: recordName(app.Name)}, cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the record of applied objects: %w", err)
	}
	var refs []applied.Ref
	if err := json.Unmarshal([]byte(cm.Data["inventory"]), &refs); err != nil {
		return nil, fmt.Errorf("the record of applied objects, ConfigMap %s, is corrupt: %w", cm.Name, err)
	}
	return refs, nil
}

// Save writes the record, owned by the Application.
func (rec appliedRecord) Save(ctx context.Context, app *flotillav1.Application, refs []applied.Ref) error {
	applied.Sort(refs)
	raw, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: recordName(app.Name), Namespace: app.Namespace,
			Labels:          map[string]string{flotillav1.LabelManagedBy: flotillav1.FieldManagerAgent},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: flotillav1.GroupVersion.String(), Kind: "Application", Name: app.Name, UID: app.UID}}},
		Data: map[string]string{"inventory": string(raw)},
	}
	if err := kube.Apply(ctx, rec.Client, cm, flotillav1.FieldManagerAgent); err != nil {
		return fmt.Errorf("save the record of applied objects: %w", err)
	}
	return nil
}

// Delete removes the record's ConfigMap.
func (rec appliedRecord) Delete(ctx context.Context, app *flotillav1.Application) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: recordName(app.Name)}}
	return client.IgnoreNotFound(rec.Client.Delete(ctx, cm))
}

// deletion is how deleteApplied deletes: the propagation policy, and the
// per-object sync option that keeps an object (Prune=false when pruning,
// Delete=false when the Application goes).
type deletion struct {
	policy metav1.DeletionPropagation
	unless string
}

// objectOption reports whether an object's flotilla.dev/sync-options
// annotation lists opt (e.g. Prune=false).
func objectOption(u *unstructured.Unstructured, opt string) bool {
	for _, o := range strings.Split(u.GetAnnotations()[flotillav1.AnnotationSyncOptions], ",") {
		if strings.EqualFold(strings.TrimSpace(o), opt) {
			return true
		}
	}
	return false
}

// deleteApplied deletes recorded objects, but only those that still are
// the very objects app applied (same UID, and still carrying app's name):
// an object recreated by someone else, or taken over by another
// Application, is never deleted. It returns the refs it could not delete
// (to keep recording).
func deleteApplied(ctx context.Context, c client.Client, app string, refs []applied.Ref, how deletion) (deleted []applied.Ref, kept []applied.Ref, err error) {
	if how.policy == "" {
		how.policy = metav1.DeletePropagationBackground
	}
	for _, r := range refs {
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(r.GVK())
		getErr := c.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: r.Name}, live)
		switch {
		case apierrors.IsNotFound(getErr):
			continue
		case getErr != nil:
			kept = append(kept, r)
			err = getErr
			continue
		case r.UID == "" || string(live.GetUID()) != r.UID || live.GetAnnotations()[flotillav1.AnnotationApplication] != app:
			continue // not the object we applied: leave it alone and forget it
		case how.unless != "" && objectOption(live, how.unless):
			log.FromContext(ctx).Info("Kept, as its annotation asks", "object", r.String(), flotillav1.AnnotationSyncOptions, how.unless)
			continue // the object asks to stay: left alone and forgotten
		}
		uid := types.UID(r.UID)
		delErr := c.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(how.policy))
		if delErr != nil && !apierrors.IsNotFound(delErr) {
			kept = append(kept, r)
			err = fmt.Errorf("prune %s: %w", r, delErr)
			continue
		}
		deleted = append(deleted, r)
	}
	return deleted, kept, err
}
