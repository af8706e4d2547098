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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
	"github.com/flotilla-dev/flotilla/internal/project"
)

type installOptions struct {
	kube      kubeFlags
	namespace string
	values    chartValues
	dryRun    bool
	output    string
	wait      bool
	timeout   time.Duration
	purge     bool
}

func (o *installOptions) bindCommon(cmd *cobra.Command) {
	f := cmd.Flags()
	o.kube.bind(f, "", "the hub")
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the hub (default: where it was installed, else "+flotillav1.SystemNamespace+"; recorded on the hub for every other command)")
	f.DurationVar(&o.timeout, "timeout", 5*time.Minute, "how long to wait")
}

func newInstallCommand(s Streams) *cobra.Command {
	o := &installOptions{}
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install or upgrade the Flotilla hub into the current cluster",
		Long: `Install or upgrade the hub: its CRDs, the flotilla-system namespace, RBAC
and the flotilla-hub Deployment. The objects come from the flotilla Helm
chart built into this binary (the same chart as charts/flotilla), applied
server-side, so running it again upgrades in place.`,
		Example: `  flotilla install
  flotilla install --image ghcr.io/flotilla-dev/flotilla-hub:v0.1.0 --set replicas=2
  flotilla install --dry-run -o yaml > hub.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.install(cmd.Context(), s) },
	}
	o.bindCommon(cmd)
	f := cmd.Flags()
	o.values.bind(f, "hub")
	f.StringVar(&o.values.image, "image", "", "hub image (repository[:tag]); default ghcr.io/flotilla-dev/flotilla-hub at this CLI's version")
	f.BoolVar(&o.dryRun, "dry-run", false, "print what would be applied and change nothing")
	f.StringVarP(&o.output, "output", "o", "yaml", "with --dry-run: yaml or json")
	f.BoolVar(&o.wait, "wait", true, "wait for the hub Deployment to become available")
	return cmd
}

func newUninstallCommand(s Streams) *cobra.Command {
	o := &installOptions{}
	cmd := &cobra.Command{
		Use:   "uninstall",
		Short: "Remove the Flotilla hub (keeping ApplicationSets, MemberClusters and their Secrets unless --purge)",
		Long: `Remove the hub's Deployment, RBAC and ServiceAccount. Your objects stay:
the CRDs, ApplicationSets, Applications, MemberClusters and the namespace with
its kubeconfig Secrets, so 'flotilla install' picks up where it left off.

--purge also deletes every ApplicationSet and MemberCluster (while the hub
still runs, so that the spoke copies are removed), then the CRDs and the
namespace.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.uninstall(cmd.Context(), s) },
	}
	o.bindCommon(cmd)
	o.values.bind(cmd.Flags(), "hub")
	cmd.Flags().BoolVar(&o.purge, "purge", false, "also delete ApplicationSets, MemberClusters, the CRDs and the namespace")
	return cmd
}

// hubRunsIn reports whether the hub's Deployment exists in namespace.
func (o *installOptions) hubRunsIn(ctx context.Context, hub *conn, namespace string) bool {
	return hub.client.Get(ctx, client.ObjectKey{Namespace: namespace, Name: "flotilla-hub"}, &appsv1.Deployment{}) == nil
}

// hubObjects renders the hub chart and prepends the namespace.
func (o *installOptions) hubObjects() (*charts.Rendered, error) {
	vals, err := o.values.values(true)
	if err != nil {
		return nil, err
	}
	r, err := charts.Render(charts.Hub, o.namespace, vals)
	if err != nil {
		return nil, err
	}
	r.Objects = append([]*unstructured.Unstructured{namespaceObject(o.namespace)}, r.Objects...)
	for _, obj := range r.Objects {
		if obj.GetKind() == "CustomResourceDefinition" && obj.GetName() == "memberclusters."+flotillav1.GroupVersion.Group {
			// Every CLI command finds the hub's namespace here.
			a := obj.GetAnnotations()
			if a == nil {
				a = map[string]string{}
			}
			a[flotillav1.AnnotationHubNamespaceOfHub] = o.namespace
			obj.SetAnnotations(a)
		}
	}
	return r, nil
}

func namespaceObject(name string) *unstructured.Unstructured {
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"app.kubernetes.io/part-of": "flotilla"}}}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(ns)
	if err != nil {
		panic(err)
	}
	delete(m["metadata"].(map[string]any), "creationTimestamp")
	delete(m, "spec")
	delete(m, "status")
	return &unstructured.Unstructured{Object: m}
}

func (o *installOptions) install(ctx context.Context, s Streams) error {
	if o.dryRun {
		if o.namespace == "" {
			o.namespace = flotillav1.SystemNamespace
		}
		r, err := o.hubObjects()
		if err != nil {
			return err
		}
		return printList(s.Out, o.output, r.Objects)
	}
	hub, err := o.kube.connect(ctx, "the hub", cliScheme())
	if err != nil {
		return err
	}
	if o.namespace == "" {
		o.namespace = hub.hubNamespace(ctx) // an upgrade stays where the hub is
	} else if recorded := hub.hubNamespace(ctx); recorded != o.namespace && requireHub(ctx, hub) == nil && o.hubRunsIn(ctx, hub, recorded) {
		return fmt.Errorf("the hub is installed in namespace %s: one hub per cluster (run 'flotilla uninstall' first to move it, or drop -n)", recorded)
	}
	r, err := o.hubObjects()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Installing the Flotilla hub into namespace %s (context %q)\n", o.namespace, hub.context)
	if err := applyAll(ctx, hub, r.Objects, s.ErrOut); err != nil {
		return err
	}
	// The default Project keeps single-team use working; an existing one
	// (narrowed by the platform team) is never changed.
	switch err := createDefaultProject(ctx, hub.client, o.namespace); {
	case err == nil:
		fmt.Fprintf(s.ErrOut, "  created Project %s/default (anything, anywhere: narrow it with 'kubectl edit fproj default -n %s')\n", o.namespace, o.namespace)
	case !apierrors.IsAlreadyExists(err):
		return fmt.Errorf("create the default Project: %w", err)
	}
	deploys := false
	for _, obj := range r.Objects {
		deploys = deploys || obj.GetKind() == "Deployment"
	}
	if o.wait && deploys {
		if err := waitDeployment(ctx, hub, o.namespace, "flotilla-hub", o.timeout, s.ErrOut); err != nil {
			return err
		}
	}
	fmt.Fprintf(s.Out, "The Flotilla hub is installed.\n\n%s\n", r.Notes)
	return nil
}

func (o *installOptions) uninstall(ctx context.Context, s Streams) error {
	hub, err := o.kube.connect(ctx, "the hub", cliScheme())
	if err != nil {
		return err
	}
	if o.namespace == "" {
		o.namespace = hub.hubNamespace(ctx)
	}
	r, err := o.hubObjects()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "Uninstalling the Flotilla hub from namespace %s (context %q)\n", o.namespace, hub.context)
	if o.purge {
		if err := purgeUserObjects(ctx, hub, o.timeout, s); err != nil {
			return err
		}
	}
	var remove []*unstructured.Unstructured
	for _, obj := range r.Objects {
		switch obj.GetKind() {
		case "CustomResourceDefinition", "Namespace":
			if !o.purge {
				continue
			}
		}
		remove = append(remove, obj)
	}
	if err := deleteAll(ctx, hub, remove, s.ErrOut); err != nil {
		return err
	}
	if o.purge {
		fmt.Fprintln(s.Out, "The Flotilla hub and everything it managed on the hub are removed.")
		return nil
	}
	fmt.Fprintln(s.Out, "The Flotilla hub is removed. ApplicationSets, MemberClusters, the CRDs and namespace "+o.namespace+" are kept: 'flotilla install' resumes, 'flotilla uninstall --purge' removes them.")
	return nil
}

// purgeUserObjects deletes every ApplicationSet and MemberCluster and waits
// for the hub to finalize their Applications.
func purgeUserObjects(ctx context.Context, hub *conn, timeout time.Duration, s Streams) error {
	sets := &flotillav1.ApplicationSetList{}
	if err := hub.client.List(ctx, sets); err != nil {
		return purgeError("list ApplicationSets", err)
	}
	for i := range sets.Items {
		if err := client.IgnoreNotFound(hub.client.Delete(ctx, &sets.Items[i])); err != nil {
			return purgeError("delete ApplicationSet "+sets.Items[i].Name, err)
		}
	}
	fmt.Fprintln(s.ErrOut, "  deleting ApplicationSets and waiting for their Applications to be removed from the spokes")
	last := -1
	err := wait.PollUntilContextTimeout(ctx, time.Second, timeout, true, func(ctx context.Context) (bool, error) {
		apps := &flotillav1.ApplicationList{}
		if err := hub.client.List(ctx, apps); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if len(apps.Items) != last {
			fmt.Fprintf(s.ErrOut, "  %d Applications left\n", len(apps.Items))
			last = len(apps.Items)
		}
		return len(apps.Items) == 0, nil
	})
	if err != nil {
		return fmt.Errorf("the hub's Applications are still being removed after %s (is the hub running? see 'kubectl get applications -A'): nothing else was deleted", timeout)
	}
	mcs := &flotillav1.MemberClusterList{}
	if err := hub.client.List(ctx, mcs); err != nil {
		return purgeError("list MemberClusters", err)
	}
	for i := range mcs.Items {
		if err := client.IgnoreNotFound(hub.client.Delete(ctx, &mcs.Items[i])); err != nil {
			return purgeError("delete MemberCluster "+mcs.Items[i].Name, err)
		}
		fmt.Fprintf(s.ErrOut, "  deleted MemberCluster %s\n", mcs.Items[i].Name)
	}
	return nil
}

func purgeError(what string, err error) error {
	return fmt.Errorf("purge: %s: %w", what, err)
}

// createDefaultProject creates the default Project, waiting (up to 30 s)
// for the Project CRD just applied to be served.
func createDefaultProject(ctx context.Context, c client.Client, namespace string) error {
	var err error
	for range 60 {
		if err = c.Create(ctx, project.Default(namespace)); !apimeta.IsNoMatchError(err) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return err
}
