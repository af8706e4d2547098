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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func newClusterCommand(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "cluster",
		Aliases: []string{"clusters"},
		Short:   "Register, list, label and unregister the fleet's clusters",
	}
	cmd.AddCommand(newClusterRegisterCommand(s), newClusterListCommand(s), newClusterLabelCommand(s), newClusterUnregisterCommand(s))
	return cmd
}

type hubOptions struct {
	kube   kubeFlags
	output string
}

func (o *hubOptions) bind(cmd *cobra.Command, outputs string) {
	o.kube.bind(cmd.Flags(), "", "the hub")
	if outputs != "" {
		cmd.Flags().StringVarP(&o.output, "output", "o", "table", "output format: "+outputs)
	}
}

func (o *hubOptions) connect(ctx context.Context) (*conn, error) {
	hub, err := o.kube.connect(ctx, "the hub", cliScheme())
	if err != nil {
		return nil, err
	}
	return hub, requireHub(ctx, hub)
}

func newClusterListCommand(s Streams) *cobra.Command {
	o := &hubOptions{}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "get"},
		Short:   "List the registered clusters: readiness, agent, versions and app health",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "wide", "json", "yaml"); err != nil {
				return err
			}
			hub, err := o.connect(cmd.Context())
			if err != nil {
				return err
			}
			list := &flotillav1.MemberClusterList{}
			if err := hub.client.List(cmd.Context(), list); err != nil {
				return fmt.Errorf("list MemberClusters: %w", err)
			}
			return printClusters(s.Out, o.output, list.Items, time.Now(), palette{on: isTerminal(s.Out)})
		},
	}
	o.bind(cmd, "table, wide, json or yaml")
	return cmd
}

func printClusters(w io.Writer, format string, items []flotillav1.MemberCluster, now time.Time, p palette) error {
	sort.Slice(items, func(i, j int) bool { return items[i].Name < items[j].Name })
	for i := range items {
		items[i].APIVersion, items[i].Kind = flotillav1.GroupVersion.String(), "MemberCluster"
		items[i].ManagedFields = nil
	}
	switch format {
	case "json", "yaml":
		return printList(w, format, items)
	}
	if len(items) == 0 {
		_, err := io.WriteString(w, "No clusters registered: add one with 'flotilla cluster register NAME --context CONTEXT'.\n")
		return err
	}
	t := &table{header: []string{"NAME", "READY", "AGENT", "VERSION", "APPS", "HEALTHY", "AGE"}, colour: p, paint: map[int]bool{1: true, 2: true}}
	wide := format == "wide"
	if wide {
		t.header = append(t.header, "SERVER", "AGENT-VERSION", "LABELS", "MESSAGE")
	}
	for _, mc := range items {
		row := []string{mc.Name, conditionWord(mc.Status.Conditions, flotillav1.ConditionReady), agentWord(mc.Status.Conditions), orNone(mc.Status.KubernetesVersion),
			itoa(mc.Status.Applications.Total), itoa(mc.Status.Applications.Healthy), age(mc.CreationTimestamp.Time, now)}
		if wide {
			row = append(row, orNone(mc.Status.Server), orNone(mc.Status.AgentVersion), labelString(mc.Labels), clusterMessage(mc))
		}
		t.add(row...)
	}
	return t.write(w)
}

func conditionWord(conds []metav1.Condition, typ string) string {
	c := apimeta.FindStatusCondition(conds, typ)
	if c == nil {
		return "Unknown"
	}
	return string(c.Status)
}

func agentWord(conds []metav1.Condition) string {
	c := apimeta.FindStatusCondition(conds, flotillav1.ConditionAgentAvailable)
	switch {
	case c == nil:
		return "Unknown"
	case c.Status == metav1.ConditionTrue:
		return "Ready"
	case c.Status == metav1.ConditionFalse:
		return "Missing"
	}
	return "Unknown"
}

func clusterMessage(mc flotillav1.MemberCluster) string {
	for _, typ := range []string{flotillav1.ConditionReady, flotillav1.ConditionAgentAvailable} {
		if c := apimeta.FindStatusCondition(mc.Status.Conditions, typ); c != nil && c.Status != metav1.ConditionTrue {
			return c.Message
		}
	}
	return ""
}

func labelString(l map[string]string) string {
	if len(l) == 0 {
		return "<none>"
	}
	keys := make([]string, 0, len(l))
	for k := range l {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + l[k]
	}
	return strings.Join(parts, ",")
}

type labelOptions struct {
	hubOptions
	overwrite bool
}

func newClusterLabelCommand(s Streams) *cobra.Command {
	o := &labelOptions{}
	cmd := &cobra.Command{
		Use:   "label NAME KEY=VALUE ... KEY-",
		Short: "Add, change or remove a cluster's labels (clusters generators select on them)",
		Long: `Set or remove MemberCluster labels, as 'kubectl label' does: KEY=VALUE sets,
KEY- removes. Changing an existing value needs --overwrite. Every
ApplicationSet whose clusters generator selects the cluster before or after
the change is re-evaluated at once.`,
		Example: `  flotilla cluster label prod-eu-1 env=prod tier=gold
  flotilla cluster label prod-eu-1 env=staging --overwrite
  flotilla cluster label prod-eu-1 tier-`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) < 2 {
				return fmt.Errorf("%s needs a cluster name and at least one KEY=VALUE or KEY-: see '%s --help'", cmd.CommandPath(), cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), s, args[0], args[1:]) },
	}
	o.bind(cmd, "")
	cmd.Flags().BoolVar(&o.overwrite, "overwrite", false, "allow changing the value of an existing label")
	return cmd
}

func (o *labelOptions) run(ctx context.Context, s Streams, name string, changes []string) error {
	set := map[string]string{}
	var remove []string
	for _, ch := range changes {
		if k, ok := strings.CutSuffix(ch, "-"); ok && !strings.Contains(ch, "=") {
			if err := validateLabel(k, ""); err != nil {
				return err
			}
			remove = append(remove, k)
			continue
		}
		k, v, ok := strings.Cut(ch, "=")
		if !ok {
			return fmt.Errorf("invalid label change %q: use KEY=VALUE to set or KEY- to remove", ch)
		}
		if err := validateLabel(k, v); err != nil {
			return err
		}
		set[k] = v
	}
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	mc := &flotillav1.MemberCluster{}
	// The hub writes the cluster's status all the time: retry on conflict,
	// re-checking --overwrite against the fresh labels each time.
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		if err := hub.client.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
			return notFoundHint(err, "cluster", name, "flotilla cluster list")
		}
		patch := client.MergeFromWithOptions(mc.DeepCopy(), client.MergeFromWithOptimisticLock{})
		if mc.Labels == nil {
			mc.Labels = map[string]string{}
		}
		for k, v := range set {
			if old, ok := mc.Labels[k]; ok && old != v && !o.overwrite {
				return fmt.Errorf("cluster %s already has label %s=%s: pass --overwrite to change it to %s", name, k, old, v)
			}
			mc.Labels[k] = v
		}
		for _, k := range remove {
			delete(mc.Labels, k)
		}
		return hub.client.Patch(ctx, mc, patch)
	})
	if err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("label cluster %s: %w (retry the command)", name, err)
		}
		return err
	}
	fmt.Fprintf(s.Out, "cluster %s labeled: %s\n", name, labelString(mc.Labels))
	return nil
}
