package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
)

type unregisterOptions struct {
	clusterTarget
	deleteWorkloads bool
}

func newClusterUnregisterCommand(s Streams) *cobra.Command {
	o := &unregisterOptions{}
	cmd := &cobra.Command{
		Use:   "unregister NAME [--context SPOKE_CONTEXT] [--delete-workloads]",
		Short: "Remove a cluster from the fleet, keeping (default) or deleting what was deployed there",
		Long: `Remove a cluster from the fleet.

The hub first pauses delivery to the cluster, so nothing is re-delivered or
deleted behind your back. With --context (the cluster's kubeconfig context)
the agent and everything 'flotilla cluster register' installed there are
removed:
  - by default the deployed workloads are kept (the Applications are marked
    preserveResourcesOnDeletion before they are deleted);
  - with --delete-workloads the agent first prunes every object it applied,
    and the command waits for that.
Then the MemberCluster and its kubeconfig Secret are deleted from the hub.
Without --context only the hub side is removed; the cluster keeps its agent.`,
		Example: `  flotilla cluster unregister dev --context dev
  flotilla cluster unregister dev --context dev --delete-workloads`,
		Args: exactlyOneName("cluster"),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), s, args[0]) },
	}
	o.clusterTarget.bind(cmd)
	cmd.Flags().BoolVar(&o.deleteWorkloads, "delete-workloads", false, "prune every object the cluster's Applications deployed (default: keep them running)")
	return cmd
}

func (o *unregisterOptions) run(ctx context.Context, s Streams, name string) error {
	if err := validateClusterName(name); err != nil {
		return err
	}
	hub, err := o.hubFlags().connect(ctx, "the hub", cliScheme())
	if err != nil {
		return err
	}
	if err := requireHub(ctx, hub); err != nil {
		return err
	}
	mc := &flotillav1.MemberCluster{}
	if err := hub.client.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
		if !apierrors.IsNotFound(err) || o.spoke.context == "" {
			return notFoundHint(err, "cluster", name, "flotilla cluster list")
		}
		mc = nil // Already gone from the hub: clean the spoke only.
	}
	var spoke *conn
	if o.spoke.context != "" {
		if spoke, err = o.spoke.connect(ctx, "cluster "+name, cliScheme()); err != nil {
			return err
		}
		if mc != nil {
			if reg := registeredServer(ctx, hub, mc); reg != "" && reg != spoke.config.Host {
				return fmt.Errorf("context %q points at %s but cluster %s is registered with %s: pass the context of that cluster", spoke.context, spoke.config.Host, name, reg)
			}
			if mc.Spec.AgentNamespace != "" {
				o.agentNamespace = mc.Spec.AgentNamespace
			}
		}
	} else if o.deleteWorkloads {
		return fmt.Errorf("--delete-workloads needs --context of cluster %s: the agent there prunes what it deployed", name)
	}

	if mc != nil && !mc.Spec.Paused {
		patch := client.MergeFrom(mc.DeepCopy())
		mc.Spec.Paused = true
		if err := hub.client.Patch(ctx, mc, patch); err != nil {
			return fmt.Errorf("pause delivery to cluster %s: %w", name, err)
		}
		fmt.Fprintf(s.ErrOut, "On the hub: paused delivery to cluster %s\n", name)
	}
	if spoke != nil {
		fmt.Fprintf(s.ErrOut, "On cluster %s: removing Applications (%s) and the agent from %s\n", name, map[bool]string{true: "pruning their workloads", false: "keeping their workloads"}[o.deleteWorkloads], o.agentNamespace)
		if err := o.cleanSpoke(ctx, spoke, s); err != nil {
			return err
		}
	}
	if mc != nil {
		if err := client.IgnoreNotFound(hub.client.Delete(ctx, mc)); err != nil {
			return fmt.Errorf("delete MemberCluster %s: %w", name, err)
		}
		secret := &corev1.Secret{}
		secret.Namespace, secret.Name = hub.hubNamespace(ctx), mc.Spec.KubeconfigSecretRef.Name
		if err := client.IgnoreNotFound(hub.client.Delete(ctx, secret)); err != nil {
			return fmt.Errorf("delete kubeconfig Secret %s/%s: %w", secret.Namespace, secret.Name, err)
		}
		fmt.Fprintf(s.ErrOut, "On the hub: deleted MemberCluster %s and Secret %s/%s\n", name, secret.Namespace, secret.Name)
	}
	fmt.Fprintf(s.Out, "Cluster %s is unregistered.\n", name)
	if spoke == nil {
		fmt.Fprintf(s.Out, "Its agent is still installed: run 'flotilla cluster unregister %s --context CONTEXT' to remove it, or 'kubectl delete namespace %s' there.\n", name, o.agentNamespace)
	}
	return nil
}

func (o *unregisterOptions) cleanSpoke(ctx context.Context, spoke *conn, s Streams) error {
	ns := o.agentNamespace
	apps := &flotillav1.ApplicationList{}
	err := spoke.client.List(ctx, apps, client.InNamespace(ns))
	if err != nil && !apimeta.IsNoMatchError(err) {
		return fmt.Errorf("list Applications on %s: %w", spoke.what, err)
	}
	if !o.deleteWorkloads {
		// The agent is stopped first; Applications are marked preserved in
		// case one is still running (a local agent).
		if err := client.IgnoreNotFound(spoke.client.Delete(ctx, &appsv1.Deployment{ObjectMeta: objMeta(ns, "flotilla-agent")})); err != nil {
			return fmt.Errorf("stop the agent on %s: %w", spoke.what, err)
		}
		for i := range apps.Items {
			a := &apps.Items[i]
			patch := client.MergeFrom(a.DeepCopy())
			if a.Spec.SyncPolicy == nil {
				a.Spec.SyncPolicy = &flotillav1.SyncPolicy{}
			}
			a.Spec.SyncPolicy.PreserveResourcesOnDeletion = true
			if err := client.IgnoreNotFound(spoke.client.Patch(ctx, a, patch)); err != nil {
				return fmt.Errorf("mark Application %s preserved on %s: %w", a.Name, spoke.what, err)
			}
		}
	}
	for i := range apps.Items {
		if err := client.IgnoreNotFound(spoke.client.Delete(ctx, &apps.Items[i])); err != nil {
			return fmt.Errorf("delete Application %s on %s: %w", apps.Items[i].Name, spoke.what, err)
		}
	}
	if len(apps.Items) > 0 {
		if err := o.waitApplicationsGone(ctx, spoke, s); err != nil {
			return err
		}
	}
	r, err := charts.Render(charts.Agent, ns, nil)
	if err != nil {
		return err
	}
	objs := append([]*unstructured.Unstructured{namespaceObject(ns)}, r.Objects...)
	return deleteAll(ctx, spoke, objs, s.ErrOut)
}

// waitApplicationsGone waits for the agent to finalize deleted
// Applications. Keeping workloads, a stopped agent's finalizers are removed
// after a short wait; deleting them, only the agent may finish.
func (o *unregisterOptions) waitApplicationsGone(ctx context.Context, spoke *conn, s Streams) error {
	timeout := o.timeout
	if !o.deleteWorkloads {
		timeout = min(timeout, 20*time.Second)
	}
	left := -1
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		apps := &flotillav1.ApplicationList{}
		if err := spoke.client.List(ctx, apps, client.InNamespace(o.agentNamespace)); err != nil {
			return false, nil //nolint:nilerr // the spoke may be briefly unreachable: keep waiting until the timeout
		}
		if len(apps.Items) != left {
			left = len(apps.Items)
			fmt.Fprintf(s.ErrOut, "  %d Applications still finalizing\n", left)
		}
		return left == 0, nil
	})
	if err == nil {
		return nil
	}
	if o.deleteWorkloads {
		return fmt.Errorf("%d Applications on %s are still being pruned after %s: is the agent running ('kubectl -n %s get deploy,pods')? Re-run to wait longer; the hub keeps delivery paused meanwhile",
			left, spoke.what, timeout, o.agentNamespace)
	}
	apps := &flotillav1.ApplicationList{}
	if err := spoke.client.List(ctx, apps, client.InNamespace(o.agentNamespace)); err != nil {
		return fmt.Errorf("list Applications on %s: %w", spoke.what, err)
	}
	for i := range apps.Items {
		a := &apps.Items[i]
		patch := client.MergeFrom(a.DeepCopy())
		controllerutil.RemoveFinalizer(a, flotillav1.FinalizerResources)
		if err := client.IgnoreNotFound(spoke.client.Patch(ctx, a, patch)); err != nil {
			return fmt.Errorf("release Application %s on %s: %w", a.Name, spoke.what, err)
		}
	}
	fmt.Fprintf(s.ErrOut, "  released %d Applications the stopped agent could not finalize (their workloads stay)\n", len(apps.Items))
	return nil
}
