package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
)

type refreshOptions struct {
	hubOptions
	namespace string
	cluster   string
	sync      bool
	wait      bool
	timeout   time.Duration
}

func newRefreshCommand(s Streams) *cobra.Command {
	o := &refreshOptions{}
	cmd := &cobra.Command{
		Use:   "refresh SET|APPLICATION",
		Short: "Re-read Git now (and with --sync, apply once) for a set's Applications or one Application",
		Long: `Ask the agents to re-read Git and re-render now, instead of at their next
poll: every Application of the ApplicationSet SET (only those on --cluster, if
given), or the hub Application APPLICATION.

The hub pins Applications to the commit their branch resolved to; without
--cluster, the request also asks the hub to resolve the set's branch again
at once (the set's own flotilla.dev/refresh), so a new commit is picked up
now rather than at the hub's next poll.

--sync also applies once, for Applications without automated sync (those
with it apply a new render anyway).

Each request is a new value of the Application's flotilla.dev/refresh (and
flotilla.dev/sync) annotation; the agent handles each value once and reports
it in status.lastHandledRefresh (lastHandledSync), so a request is never lost
or handled twice. --wait waits until every agent has reported handling it and
its health has settled (not Progressing or Unknown), then prints how each
Application came out.`,
		Example: `  flotilla refresh guestbook -n apps
  flotilla refresh guestbook --cluster prod-eu-1 --sync --wait
  flotilla refresh prod-eu-1-guestbook --wait --timeout 5m`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), s, args[0]) },
	}
	o.bind(cmd, "")
	f := cmd.Flags()
	f.StringVarP(&o.namespace, "namespace", "n", "", "namespace of the set or Application (default: the kubeconfig context's)")
	f.StringVar(&o.cluster, "cluster", "", "only the set's Applications on this cluster")
	f.BoolVar(&o.sync, "sync", false, "also apply once (for Applications without automated sync)")
	f.BoolVar(&o.wait, "wait", false, "wait until every agent reported handling the request")
	f.DurationVar(&o.timeout, "timeout", 2*time.Minute, "how long --wait waits")
	return cmd
}

func (o *refreshOptions) run(ctx context.Context, s Streams, name string) error {
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	if o.namespace == "" {
		o.namespace = o.contextNamespace()
	}
	apps, err := o.targets(ctx, hub.client, name)
	if err != nil {
		return err
	}
	token := time.Now().UTC().Format(time.RFC3339Nano)
	keys := []string{flotillav1.AnnotationRefresh}
	if o.sync {
		keys = append(keys, flotillav1.AnnotationSync)
	}
	// The hub pins each Application to the commit its branch resolved to:
	// the set's own refresh request makes the hub resolve the branch again
	// now, before the agents re-read Git (a refresh of the Applications
	// alone would re-read the commit already pinned).
	if set := apps[0].Labels[flotillav1.LabelApplicationSet]; set != "" && o.cluster == "" {
		if err := o.refreshSet(ctx, hub.client, apps[0].Namespace, set, token); err != nil {
			return err
		}
	}
	for i := range apps {
		a := &apps[i]
		patch := client.MergeFrom(a.DeepCopy())
		if a.Annotations == nil {
			a.Annotations = map[string]string{}
		}
		for _, k := range keys {
			a.Annotations[k] = token
		}
		if err := hub.client.Patch(ctx, a, patch); err != nil {
			return fmt.Errorf("request a refresh of %s/%s: %w", a.Namespace, a.Name, err)
		}
	}
	fmt.Fprintf(s.Out, "Requested a refresh%s of %d Application(s) (request %s).\n", map[bool]string{true: " and sync"}[o.sync], len(apps), token)
	if !o.wait {
		return nil
	}
	return o.waitHandled(ctx, s.Out, hub.client, apps, token)
}

// refreshSet asks the hub to resolve the set's revisions again now.
func (o *refreshOptions) refreshSet(ctx context.Context, c client.Client, namespace, name, token string) error {
	set := &flotillav1.ApplicationSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, set); err != nil {
		return fmt.Errorf("read ApplicationSet %s/%s: %w", namespace, name, err)
	}
	patch := client.MergeFrom(set.DeepCopy())
	if set.Annotations == nil {
		set.Annotations = map[string]string{}
	}
	set.Annotations[flotillav1.AnnotationRefresh] = token
	if err := c.Patch(ctx, set, patch); err != nil {
		return fmt.Errorf("request a refresh of ApplicationSet %s/%s: %w", namespace, name, err)
	}
	return nil
}

// targets are the hub Applications name means: the set's (on --cluster),
// or the Application of that name.
func (o *refreshOptions) targets(ctx context.Context, c client.Client, name string) ([]flotillav1.Application, error) {
	set := &flotillav1.ApplicationSet{}
	err := c.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: name}, set)
	switch {
	case err == nil:
		list := &flotillav1.ApplicationList{}
		labels := client.MatchingLabels{flotillav1.LabelApplicationSet: name}
		if o.cluster != "" {
			labels[flotillav1.LabelCluster] = o.cluster
		}
		if err := c.List(ctx, list, client.InNamespace(o.namespace), labels); err != nil {
			return nil, fmt.Errorf("list the Applications of %s/%s: %w", o.namespace, name, err)
		}
		if len(list.Items) == 0 {
			return nil, fmt.Errorf("ApplicationSet %s/%s has no Applications%s: see 'flotilla status %s -n %s'", o.namespace, name, onCluster(o.cluster), name, o.namespace)
		}
		return list.Items, nil
	case !apierrors.IsNotFound(err):
		return nil, fmt.Errorf("read ApplicationSet %s/%s: %w", o.namespace, name, err)
	}
	app := &flotillav1.Application{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: name}, app); err != nil {
		return nil, notFoundHint(err, "ApplicationSet or Application", o.namespace+"/"+name, "flotilla status")
	}
	if o.cluster != "" && app.Spec.Destination.Cluster != o.cluster {
		return nil, fmt.Errorf("the Application %s/%s deploys to %s, not %s", o.namespace, name, app.Spec.Destination.Cluster, o.cluster)
	}
	return []flotillav1.Application{*app}, nil
}

func onCluster(c string) string {
	if c == "" {
		return ""
	}
	return " on cluster " + c
}

// waitHandled polls until every Application's agent reported handling
// token, printing progress, then one line per Application.
func (o *refreshOptions) waitHandled(ctx context.Context, w io.Writer, c client.Client, apps []flotillav1.Application, token string) error {
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	last := -1
	for {
		var pending []string
		var done []flotillav1.Application
		for _, a := range apps {
			cur := &flotillav1.Application{}
			if err := c.Get(ctx, client.ObjectKeyFromObject(&a), cur); err != nil {
				return fmt.Errorf("read %s/%s: %w", a.Namespace, a.Name, err)
			}
			handled := cur.Status.LastHandledRefresh == token && (!o.sync || cur.Status.LastHandledSync == token)
			switch h := cur.Status.Health.Status; {
			case !handled:
				pending = append(pending, cur.Name+" ("+whyPending(cur)+")")
			case h == flotillav1.HealthProgressing || h == flotillav1.HealthUnknown || h == "":
				pending = append(pending, cur.Name+" (handled, "+orUnknown(string(h))+": "+oneLine(cur.Status.Health.Message, 120)+")")
			default:
				done = append(done, *cur)
			}
		}
		if len(pending) == 0 {
			return printHandled(w, done)
		}
		if len(done) != last {
			fmt.Fprintf(w, "Waiting: %d of %d handled and settled (Healthy, Degraded, Suspended or Missing).\n", len(done), len(apps))
			last = len(done)
		}
		select {
		case <-ctx.Done():
			sort.Strings(pending)
			return fmt.Errorf("timed out after %s with %d of %d not handled: %s", o.timeout, len(pending), len(apps), strings.Join(pending, "; "))
		case <-time.After(time.Second):
		}
	}
}

// whyPending is what an unhandled Application's status says of it.
func whyPending(a *flotillav1.Application) string {
	for _, t := range []string{flotillav1.ConditionDelivered, flotillav1.ConditionHealthy, flotillav1.ConditionSynced} {
		if c := apimeta.FindStatusCondition(a.Status.Conditions, t); c != nil && c.Status != "True" {
			return t + " " + string(c.Status) + ": " + oneLine(c.Message, 120)
		}
	}
	return "the agent has not reported yet"
}

func printHandled(w io.Writer, apps []flotillav1.Application) error {
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	t := &table{header: []string{"CLUSTER", "APPLICATION", "SYNC", "HEALTH", "REVISION", "MESSAGE"}}
	for i := range apps {
		st := appStatus(&apps[i])
		rev := "<none>"
		if st.Revision != "" {
			rev = git.ShortSHA(st.Revision)
		}
		t.add(st.Cluster, st.Application, st.Sync, st.Health, rev, oneLine(st.Message, 80))
	}
	return t.write(w)
}
