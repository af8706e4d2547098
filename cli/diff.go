package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/api/equality"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
)

type diffOptions struct {
	generateOptions
	kube kubeFlags
}

func newDiffCommand(s Streams) *cobra.Command {
	o := &diffOptions{}
	cmd := &cobra.Command{
		Use:   "diff -f APPSET.yaml",
		Short: "Show what applying an ApplicationSet would create, change and delete on a live hub",
		Long: `Expand the ApplicationSet locally against the hub's live MemberClusters (and
Git), then compare with the Applications the hub holds for that set. Prints
each Application to be created (+), changed (~, with a diff of its spec and
labels) or deleted (-), honouring the set's applicationsSync policy. Nothing
is written.`,
		Example: `  flotilla diff -f guestbook.yaml
  flotilla diff -f guestbook.yaml --context prod-hub`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), s) },
	}
	f := cmd.Flags()
	o.kube.bind(f, "", "the hub")
	f.StringVarP(&o.filename, "filename", "f", "", "ApplicationSet YAML or JSON file ('-' for standard input)")
	f.StringVar(&o.gitCache, "git-cache", defaultGitCache(), "directory caching Git repositories")
	f.DurationVar(&o.gitTimeout, "git-timeout", git.DefaultTimeout, "timeout of each Git operation")
	f.IntVar(&o.maxApps, "max-applications", generators.DefaultMaxParams, "refuse sets that produce more Applications than this")
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// Change is one Application's planned change.
type Change struct {
	Op   string // "create", "update", "delete", "keep" (a delete the policy forbids)
	Name string
	Diff string
}

func (o *diffOptions) run(ctx context.Context, s Streams) error {
	set, err := readApplicationSet(o.filename, s.In)
	if err != nil {
		return err
	}
	hub, err := o.kube.connect(ctx, "the hub", cliScheme())
	if err != nil {
		return err
	}
	if err := requireHub(ctx, hub); err != nil {
		return err
	}
	cache, err := git.New(git.Options{Dir: o.gitCache, Timeout: o.gitTimeout})
	if err != nil {
		return err
	}
	eng := generators.New(generators.Options{Clusters: generators.HubClusters{Reader: hub.client}, Git: generators.GitCache{Cache: cache}, MaxParams: o.maxApps})
	desired, err := eng.Applications(ctx, set)
	if err != nil {
		return fmt.Errorf("ApplicationSet %s: %w", set.Name, err)
	}
	live := &flotillav1.ApplicationList{}
	if err := hub.client.List(ctx, live, client.InNamespace(set.Namespace), client.MatchingLabels{flotillav1.LabelApplicationSet: set.Name}); err != nil {
		return fmt.Errorf("list the hub's Applications of %s/%s: %w", set.Namespace, set.Name, err)
	}
	changes, err := planDiff(set, desired, live.Items)
	if err != nil {
		return err
	}
	return printDiff(s.Out, set, changes)
}

// planDiff compares desired Applications with the live ones the way the
// hub's controller would write them.
func planDiff(set *flotillav1.ApplicationSet, desired []*flotillav1.Application, live []flotillav1.Application) ([]Change, error) {
	policy := flotillav1.ApplicationsSyncSync
	if set.Spec.SyncPolicy != nil && set.Spec.SyncPolicy.ApplicationsSync != "" {
		policy = set.Spec.SyncPolicy.ApplicationsSync
	}
	mayUpdate := policy == flotillav1.ApplicationsSyncSync || policy == flotillav1.ApplicationsSyncCreateUpdate
	mayDelete := policy == flotillav1.ApplicationsSyncSync || policy == flotillav1.ApplicationsSyncCreateDelete
	byName := map[string]*flotillav1.Application{}
	for i := range live {
		byName[live[i].Name] = &live[i]
	}
	var changes []Change
	for _, d := range desired {
		cur, ok := byName[d.Name]
		if !ok {
			text, err := specYAML(d)
			if err != nil {
				return nil, err
			}
			changes = append(changes, Change{Op: "create", Name: d.Name, Diff: indentLines(text, "+ ")})
			continue
		}
		delete(byName, d.Name)
		if sameApplication(d, cur) {
			continue
		}
		op := "update"
		if !mayUpdate {
			op = "keep"
		}
		a, err := specYAML(cur)
		if err != nil {
			return nil, err
		}
		b, err := specYAML(d)
		if err != nil {
			return nil, err
		}
		diff, _ := difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(a), B: difflib.SplitLines(b), FromFile: "live", ToFile: "desired", Context: 2})
		changes = append(changes, Change{Op: op, Name: d.Name, Diff: diff})
	}
	for name := range byName {
		op := "delete"
		if !mayDelete {
			op = "keep"
		}
		changes = append(changes, Change{Op: op, Name: name})
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Name < changes[j].Name })
	return changes, nil
}

func sameApplication(desired, live *flotillav1.Application) bool {
	if !equality.Semantic.DeepEqual(desired.Spec, live.Spec) {
		return false
	}
	for k, v := range desired.Labels {
		if live.Labels[k] != v {
			return false
		}
	}
	return true
}

// specYAML is what the diff shows: labels, annotations and spec.
func specYAML(a *flotillav1.Application) (string, error) {
	raw, err := yaml.Marshal(map[string]any{"labels": a.Labels, "annotations": a.Annotations, "spec": a.Spec})
	return string(raw), err
}

func indentLines(s, prefix string) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	for i := range lines {
		lines[i] = prefix + lines[i]
	}
	return strings.Join(lines, "\n") + "\n"
}

func printDiff(w io.Writer, set *flotillav1.ApplicationSet, changes []Change) error {
	counts := map[string]int{}
	for _, c := range changes {
		counts[c.Op]++
		switch c.Op {
		case "create":
			fmt.Fprintf(w, "+ Application %s/%s (create)\n%s", set.Namespace, c.Name, c.Diff)
		case "update":
			fmt.Fprintf(w, "~ Application %s/%s (update)\n%s", set.Namespace, c.Name, c.Diff)
		case "delete":
			fmt.Fprintf(w, "- Application %s/%s (delete: its workloads are removed from the cluster unless preserveResourcesOnDeletion)\n", set.Namespace, c.Name)
		case "keep":
			fmt.Fprintf(w, "= Application %s/%s differs but is kept: applicationsSync forbids this change\n%s", set.Namespace, c.Name, c.Diff)
		}
	}
	_, err := fmt.Fprintf(w, "ApplicationSet %s/%s: %d to create, %d to update, %d to delete, %d kept by policy.\n",
		set.Namespace, set.Name, counts["create"], counts["update"], counts["delete"], counts["keep"])
	return err
}
