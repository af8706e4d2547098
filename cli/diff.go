package cli

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/applicationset"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
)

type diffOptions struct {
	generateOptions
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
	o.creds.bind(f, false)
	_ = cmd.MarkFlagRequired("filename")
	return cmd
}

// Change is one Application's planned change.
type Change struct {
	Op   string // "create", "update", "delete", "keep" (a change the policy forbids or holds)
	Name string
	Diff string
	// Why a change is kept, when not for applicationsSync.
	Why string
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
	// The hub's credentials unless a file is given; a user who may not read
	// them diffs with anonymous Git access, and is told so.
	creds, err := o.creds.source(ctx, nil)
	if err != nil {
		return err
	}
	if creds == nil {
		if creds, err = hubCredentials(ctx, hub); err != nil {
			fmt.Fprintf(s.ErrOut, "Warning: %s; reading Git without credentials (give them with --repo-creds FILE)\n", err)
			creds = nil
		}
	}
	cache, err := git.New(git.Options{Dir: o.gitCache, Timeout: o.gitTimeout, AllowLoopback: true, Credentials: creds}) // the user's own machine
	if err != nil {
		return err
	}
	eng := generators.New(generators.Options{Clusters: generators.HubClusters{Reader: hub.client}, Git: generators.GitCache{Cache: cache}, MaxParams: o.maxApps})
	desired, err := eng.Applications(ctx, set)
	if err != nil {
		return fmt.Errorf("ApplicationSet %s: %w", set.Name, err)
	}
	existing, err := ownedOnHub(ctx, hub.client, set)
	if err != nil {
		return err
	}
	carryPins(desired, existing)
	changes, err := planDiff(set, desired, existing, applicationset.MemberClusterGone(ctx, hub.client))
	if err != nil {
		return err
	}
	return printDiff(s.Out, set, changes)
}

// ownedOnHub returns the hub Applications the live set of the same name
// owns, as the controller sees them (none when the set is new).
func ownedOnHub(ctx context.Context, c client.Client, set *flotillav1.ApplicationSet) (map[string]*flotillav1.Application, error) {
	live := &flotillav1.ApplicationSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: set.Namespace, Name: set.Name}, live); apierrors.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, fmt.Errorf("read ApplicationSet %s/%s on the hub: %w", set.Namespace, set.Name, err)
	}
	var list flotillav1.ApplicationList
	if err := c.List(ctx, &list, client.InNamespace(set.Namespace), client.MatchingLabels{flotillav1.LabelApplicationSet: set.Name}); err != nil {
		return nil, fmt.Errorf("list the hub's Applications of %s/%s: %w", set.Namespace, set.Name, err)
	}
	return applicationset.Owned(live, list.Items), nil
}

// planDiff prints the hub controller's own write plan (applicationset.PlanWrites).
func planDiff(set *flotillav1.ApplicationSet, desired []*flotillav1.Application, existing map[string]*flotillav1.Application, gone applicationset.ClusterGone) ([]Change, error) {
	p := applicationset.PlanWrites(set, desired, existing, gone)
	var changes []Change
	for _, d := range p.Create {
		text, err := specYAML(d)
		if err != nil {
			return nil, err
		}
		changes = append(changes, Change{Op: "create", Name: d.Name, Diff: indentLines(text, "+ ")})
	}
	for op, apps := range map[string][]*flotillav1.Application{"update": p.Update, "keep": p.HeldUpdates} {
		for _, d := range apps {
			diff, err := specDiff(existing[d.Name], d)
			if err != nil {
				return nil, err
			}
			changes = append(changes, Change{Op: op, Name: d.Name, Diff: diff})
		}
	}
	for op, apps := range map[string][]*flotillav1.Application{"delete": p.Delete, "keep": p.HeldDeletes} {
		for _, a := range apps {
			c := Change{Op: op, Name: a.Name}
			if op == "keep" && p.DeletionsHeld {
				c.Why = "the deletion is held: " + p.HeldMessage()
			}
			changes = append(changes, c)
		}
	}
	sort.Slice(changes, func(i, j int) bool { return changes[i].Name < changes[j].Name })
	return changes, nil
}

func specDiff(live, desired *flotillav1.Application) (string, error) {
	a, err := specYAML(live)
	if err != nil {
		return "", err
	}
	b, err := specYAML(desired)
	if err != nil {
		return "", err
	}
	return difflib.GetUnifiedDiffString(difflib.UnifiedDiff{A: difflib.SplitLines(a), B: difflib.SplitLines(b), FromFile: "live", ToFile: "desired", Context: 2})
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
			why := c.Why
			if why == "" {
				why = "applicationsSync forbids this change"
			}
			fmt.Fprintf(w, "= Application %s/%s differs but is kept: %s\n%s", set.Namespace, c.Name, why, c.Diff)
		}
	}
	_, err := fmt.Fprintf(w, "ApplicationSet %s/%s: %d to create, %d to update, %d to delete, %d kept by policy.\n",
		set.Namespace, set.Name, counts["create"], counts["update"], counts["delete"], counts["keep"])
	return err
}

// carryPins gives each desired Application the commit the hub pinned its
// live one to, when it reads the same repository and revision: the hub
// keeps the pin until its next check, so it is no change of the set's.
func carryPins(desired []*flotillav1.Application, existing map[string]*flotillav1.Application) {
	for _, d := range desired {
		if old := existing[d.Name]; old != nil && old.Spec.Source.RepoURL == d.Spec.Source.RepoURL && old.Spec.Source.TargetRevision == d.Spec.Source.TargetRevision {
			d.Spec.Source.PinnedCommit = old.Spec.Source.PinnedCommit
		}
	}
}
