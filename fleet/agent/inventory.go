package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Inventory is the set of objects an Application applied, stored in a
// ConfigMap next to it so that it survives agent restarts.
type Inventory struct {
	Client client.Client
}

func inventoryName(app string) string { return "flotilla-inventory-" + LabelValue(app) }

// Load reads an Application's inventory (empty when none was saved).
func (inv Inventory) Load(ctx context.Context, app *flotillav1.Application) ([]Ref, error) {
	cm := &corev1.ConfigMap{}
	err := inv.Client.Get(ctx, types.NamespacedName{Namespace: app.Namespace, Name: inventoryName(app.Name)}, cm)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read inventory: %w", err)
	}
	var refs []Ref
	if err := json.Unmarshal([]byte(cm.Data["inventory"]), &refs); err != nil {
		return nil, fmt.Errorf("inventory ConfigMap %s is corrupt: %w", cm.Name, err)
	}
	return refs, nil
}

// Save writes the inventory, owned by the Application.
func (inv Inventory) Save(ctx context.Context, app *flotillav1.Application, refs []Ref) error {
	sort.Slice(refs, func(i, j int) bool { return refs[i].Key() < refs[j].Key() })
	raw, err := json.Marshal(refs)
	if err != nil {
		return err
	}
	cm := &corev1.ConfigMap{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "ConfigMap"},
		ObjectMeta: metav1.ObjectMeta{Name: inventoryName(app.Name), Namespace: app.Namespace,
			Labels:          map[string]string{flotillav1.LabelManagedBy: flotillav1.FieldManagerAgent},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: flotillav1.GroupVersion.String(), Kind: "Application", Name: app.Name, UID: app.UID}}},
		Data: map[string]string{"inventory": string(raw)},
	}
	if err := kube.Apply(ctx, inv.Client, cm, flotillav1.FieldManagerAgent); err != nil {
		return fmt.Errorf("save inventory: %w", err)
	}
	return nil
}

// Delete removes the inventory ConfigMap.
func (inv Inventory) Delete(ctx context.Context, app *flotillav1.Application) error {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: app.Namespace, Name: inventoryName(app.Name)}}
	return client.IgnoreNotFound(inv.Client.Delete(ctx, cm))
}

// Prune deletes the given inventory objects, but only those that still
// are the very objects the agent applied (same UID): an object recreated by
// someone else, or one that merely carries our labels, is never deleted.
// It returns the refs it could not delete (to keep in the inventory).
func Prune(ctx context.Context, c client.Client, refs []Ref) (deleted []Ref, kept []Ref, err error) {
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
		case r.UID == "" || string(live.GetUID()) != r.UID:
			continue // not the object we applied: leave it alone and forget it
		}
		uid := types.UID(r.UID)
		delErr := c.Delete(ctx, live, client.Preconditions{UID: &uid}, client.PropagationPolicy(metav1.DeletePropagationBackground))
		if delErr != nil && !apierrors.IsNotFound(delErr) {
			kept = append(kept, r)
			err = fmt.Errorf("prune %s: %w", r, delErr)
			continue
		}
		deleted = append(deleted, r)
	}
	return deleted, kept, err
}
