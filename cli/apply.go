package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// applyAll server-side applies objs in order, printing one line each, and
// waits for each CRD to be Established before going on.
func applyAll(ctx context.Context, c *conn, objs []*unstructured.Unstructured, progress io.Writer) error {
	for _, o := range objs {
		obj := o.DeepCopy()
		if err := c.client.Patch(ctx, obj, client.Apply, client.FieldOwner(flotillav1.FieldManagerCLI), client.ForceOwnership); err != nil {
			return fmt.Errorf("apply %s %s on %s: %w", o.GetKind(), objectName(o), c.what, err)
		}
		fmt.Fprintf(progress, "  applied %s %s\n", o.GetKind(), objectName(o))
		if o.GetKind() == "CustomResourceDefinition" {
			if err := waitEstablished(ctx, c, o.GetName()); err != nil {
				return err
			}
		}
	}
	return nil
}

func objectName(o client.Object) string {
	if o.GetNamespace() != "" {
		return o.GetNamespace() + "/" + o.GetName()
	}
	return o.GetName()
}

func waitEstablished(ctx context.Context, c *conn, name string) error {
	err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := c.client.Get(ctx, client.ObjectKey{Name: name}, crd); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		for _, cond := range crd.Status.Conditions {
			if cond.Type == apiextensionsv1.Established && cond.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		return fmt.Errorf("CRD %s on %s never became Established: %w", name, c.what, err)
	}
	return nil
}

// deleteAll deletes objs in reverse order, ignoring what is already gone.
func deleteAll(ctx context.Context, c *conn, objs []*unstructured.Unstructured, progress io.Writer) error {
	for i := len(objs) - 1; i >= 0; i-- {
		o := objs[i]
		err := c.client.Delete(ctx, o.DeepCopy(), client.PropagationPolicy("Background"))
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return fmt.Errorf("delete %s %s on %s: %w", o.GetKind(), objectName(o), c.what, err)
		}
		fmt.Fprintf(progress, "  deleted %s %s\n", o.GetKind(), objectName(o))
	}
	return nil
}

// waitDeployment waits until the Deployment has every replica updated and
// available, printing progress when it changes.
func waitDeployment(ctx context.Context, c *conn, namespace, name string, timeout time.Duration, progress io.Writer) error {
	last := ""
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		d := &appsv1.Deployment{}
		if err := c.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, d); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		want := int32(1)
		if d.Spec.Replicas != nil {
			want = *d.Spec.Replicas
		}
		msg := fmt.Sprintf("  waiting for deployment %s/%s: %d/%d available", namespace, name, d.Status.AvailableReplicas, want)
		if msg != last {
			fmt.Fprintln(progress, msg)
			last = msg
		}
		return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= want && d.Status.AvailableReplicas >= want, nil
	})
	if err != nil {
		return fmt.Errorf("deployment %s/%s on %s is not available after %s (%s): check 'kubectl -n %s describe deployment %s' and its pods' events",
			namespace, name, c.what, timeout, last, namespace, name)
	}
	return nil
}
