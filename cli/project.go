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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/project"
)

func newProjectCommand(s Streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "project",
		Aliases: []string{"projects", "proj"},
		Short:   "Create, list and show Projects: what a team may deploy, from where, to where",
		Long: `A Project (in the hub's namespace, so only whoever may write there decides)
bounds its Applications: the hub namespaces whose ApplicationSets and
Applications may use it, the repositories they deploy from, the clusters
(by label) and namespaces they deploy to, the cluster-scoped kinds they may
create (none unless listed) and the namespaced kinds they may not, and the
ServiceAccount on each spoke that the agent impersonates to apply them.
An Application names its Project in spec.project ("default" when empty).

The hub writes nothing of a set with an Application its Project forbids
(the set's ResourcesUpToDate condition and an Event name the Application
and the rule), and does not deliver a hand-made Application that breaks
its Project. Each spoke copy carries its Project's rules: the agent checks
them again, object by object.`,
	}
	cmd.AddCommand(newProjectCreateCommand(s), newProjectListCommand(s), newProjectShowCommand(s))
	return cmd
}

type projectCreateOptions struct {
	hubOptions
	spec             flotillav1.ProjectSpec
	clusterSelector  string
	namespaces       []string
	clusterResources []string
	deniedResources  []string
	dryRun           bool
}

func newProjectCreateCommand(s Streams) *cobra.Command {
	o := &projectCreateOptions{}
	cmd := &cobra.Command{
		Use:   "create NAME --source-namespace NS --source-repo GLOB --namespace GLOB [flags]",
		Short: "Create a Project in the hub's namespace",
		Example: `  # team-a: ApplicationSets in namespace team-a, from its own repositories,
  # into team-a-* namespaces on clusters labelled env=prod, as ServiceAccount team-a
  flotilla project create team-a --source-namespace team-a \
    --source-repo 'https://git.example/team-a/*' \
    --cluster-selector env=prod --namespace 'team-a-*' --service-account team-a
  flotilla project create team-a ... --dry-run -o yaml > team-a.yaml`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), s, args[0]) },
	}
	o.bind(cmd, "yaml or json (with --dry-run)")
	o.output = ""
	f := cmd.Flags()
	f.StringSliceVar(&o.spec.SourceNamespaces, "source-namespace", nil, "hub namespaces (globs) whose ApplicationSets and Applications may use the Project (repeatable)")
	f.StringSliceVar(&o.spec.SourceRepos, "source-repo", nil, "repository URLs (globs) its Applications may deploy from (repeatable)")
	f.StringVar(&o.clusterSelector, "cluster-selector", "", "label selector of the clusters it may deploy to (kubectl syntax, e.g. env=prod,region in (eu,us); default: every cluster)")
	f.StringSliceVar(&o.namespaces, "namespace", nil, "namespaces (globs) on those clusters it may deploy to (repeatable)")
	f.StringSliceVar(&o.clusterResources, "allow-cluster-resource", nil, "cluster-scoped kind it may create, as group/Kind or Kind (repeatable; default none)")
	f.StringSliceVar(&o.deniedResources, "deny-namespaced-resource", nil, "namespaced kind it may not create, as group/Kind or Kind (repeatable)")
	f.StringVar(&o.spec.ServiceAccount, "service-account", "", "ServiceAccount in the agent's namespace on each spoke that applies its Applications (default: the agent's default)")
	f.StringVar(&o.spec.Description, "description", "", "what the Project is for")
	f.BoolVar(&o.dryRun, "dry-run", false, "print the Project instead of creating it")
	return cmd
}

func (o *projectCreateOptions) run(ctx context.Context, s Streams, name string) error {
	if len(o.spec.SourceNamespaces) == 0 || len(o.spec.SourceRepos) == 0 || len(o.namespaces) == 0 {
		return fmt.Errorf("a Project needs --source-namespace, --source-repo and --namespace (use '*' for any)")
	}
	sel, err := metav1.ParseToLabelSelector(o.clusterSelector)
	if err != nil {
		return fmt.Errorf("--cluster-selector %q: %w", o.clusterSelector, err)
	}
	o.spec.Destinations = []flotillav1.ProjectDestination{{ClusterSelector: *sel, Namespaces: o.namespaces}}
	for _, l := range []struct {
		in  []string
		out *[]flotillav1.GroupKind
	}{{o.clusterResources, &o.spec.ClusterResources}, {o.deniedResources, &o.spec.DeniedNamespacedResources}} {
		if *l.out, err = project.ParseKinds(l.in); err != nil {
			return err
		}
	}
	p := &flotillav1.Project{TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "Project"},
		ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: o.spec}
	if o.dryRun {
		p.Namespace = flotillav1.SystemNamespace
		if o.output == "json" {
			return printJSON(s.Out, p)
		}
		return printYAML(s.Out, p)
	}
	hub, err := o.connect(ctx)
	if err != nil {
		return err
	}
	p.Namespace = hub.hubNamespace(ctx)
	if err := hub.client.Create(ctx, p); err != nil {
		if apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("the Project %s/%s exists: change it with 'kubectl edit fproj %s -n %s'", p.Namespace, name, name, p.Namespace)
		}
		return fmt.Errorf("create Project %s/%s: %w", p.Namespace, name, err)
	}
	fmt.Fprintf(s.Out, "Project %s/%s created. Name it in your Applications' spec.project (ApplicationSet template: spec.template.spec.project: %s).\n", p.Namespace, name, name)
	return nil
}

func (o *hubOptions) projects(ctx context.Context) ([]flotillav1.Project, string, error) {
	hub, err := o.connect(ctx)
	if err != nil {
		return nil, "", err
	}
	ns := hub.hubNamespace(ctx)
	list := &flotillav1.ProjectList{}
	if err := hub.client.List(ctx, list, client.InNamespace(ns)); err != nil {
		return nil, ns, fmt.Errorf("list Projects in %s: %w", ns, err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items, ns, nil
}

func newProjectListCommand(s Streams) *cobra.Command {
	o := &hubOptions{}
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls", "get"},
		Short:   "List the Projects",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "wide", "json", "yaml"); err != nil {
				return err
			}
			ps, ns, err := o.projects(cmd.Context())
			if err != nil {
				return err
			}
			if o.output == "json" || o.output == "yaml" {
				return printList(s.Out, o.output, ps)
			}
			if len(ps) == 0 {
				_, err := fmt.Fprintf(s.Out, "No Projects in %s: the hub creates the default one when it starts.\n", ns)
				return err
			}
			t := &table{header: []string{"NAME", "SOURCE-NAMESPACES", "SOURCE-REPOS", "DESTINATIONS", "SERVICE-ACCOUNT", "AGE"}}
			if o.output == "wide" {
				t.header = append(t.header, "CLUSTER-RESOURCES", "DENIED")
			}
			for _, p := range ps {
				row := []string{p.Name, strings.Join(p.Spec.SourceNamespaces, ","), strings.Join(p.Spec.SourceRepos, ","), destinations(p.Spec.Destinations),
					orDefault(p.Spec.ServiceAccount), age(p.CreationTimestamp.Time, time.Now())}
				if o.output == "wide" {
					row = append(row, kindsList(p.Spec.ClusterResources), kindsList(p.Spec.DeniedNamespacedResources))
				}
				t.add(row...)
			}
			return t.write(s.Out)
		},
	}
	o.bind(cmd, "table, wide, json or yaml")
	return cmd
}

func newProjectShowCommand(s Streams) *cobra.Command {
	o := &hubOptions{}
	cmd := &cobra.Command{
		Use:   "show NAME",
		Short: "Show one Project's rules and who uses it",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			hub, err := o.connect(cmd.Context())
			if err != nil {
				return err
			}
			ns := hub.hubNamespace(cmd.Context())
			p := &flotillav1.Project{}
			if err := hub.client.Get(cmd.Context(), client.ObjectKey{Namespace: ns, Name: args[0]}, p); err != nil {
				return notFoundHint(err, "Project", ns+"/"+args[0], "flotilla project list")
			}
			if o.output == "json" {
				return printJSON(s.Out, p)
			}
			if o.output == "yaml" {
				return printYAML(s.Out, p)
			}
			apps := &flotillav1.ApplicationList{}
			if err := hub.client.List(cmd.Context(), apps); err != nil {
				return fmt.Errorf("list Applications: %w", err)
			}
			used := 0
			for i := range apps.Items {
				a := &apps.Items[i]
				if !flotillav1.IsSpokeCopy(a) && (a.Spec.Project == p.Name || (a.Spec.Project == "" && p.Name == flotillav1.DefaultProject)) {
					used++
				}
			}
			return printProject(s.Out, p, used)
		},
	}
	o.bind(cmd, "table, json or yaml")
	return cmd
}

func printProject(w io.Writer, p *flotillav1.Project, used int) error {
	fmt.Fprintf(w, "Project %s/%s", p.Namespace, p.Name)
	if p.Spec.Description != "" {
		fmt.Fprintf(w, ": %s", p.Spec.Description)
	}
	fmt.Fprintf(w, "\n  used by:           %d Applications\n", used)
	fmt.Fprintf(w, "  source namespaces: %s\n", strings.Join(p.Spec.SourceNamespaces, ", "))
	fmt.Fprintf(w, "  source repos:      %s\n", strings.Join(p.Spec.SourceRepos, ", "))
	for _, d := range p.Spec.Destinations {
		fmt.Fprintf(w, "  destination:       clusters %s, namespaces %s\n", selectorString(d.ClusterSelector), strings.Join(d.Namespaces, ", "))
	}
	fmt.Fprintf(w, "  cluster-scoped:    %s\n", orText(kindsList(p.Spec.ClusterResources), "none allowed"))
	fmt.Fprintf(w, "  denied namespaced: %s\n", orText(kindsList(p.Spec.DeniedNamespacedResources), "none"))
	_, err := fmt.Fprintf(w, "  applied as:        ServiceAccount %s on each spoke\n", orDefault(p.Spec.ServiceAccount))
	return err
}

func destinations(ds []flotillav1.ProjectDestination) string {
	var out []string
	for _, d := range ds {
		out = append(out, selectorString(d.ClusterSelector)+":"+strings.Join(d.Namespaces, ","))
	}
	return strings.Join(out, " ")
}

func selectorString(sel metav1.LabelSelector) string {
	s, err := metav1.LabelSelectorAsSelector(&sel)
	if err != nil || s.Empty() {
		return "*"
	}
	return s.String()
}

func kindsList(gks []flotillav1.GroupKind) string {
	var out []string
	for _, gk := range gks {
		if gk.Group == "" {
			out = append(out, gk.Kind)
		} else {
			out = append(out, gk.Group+"/"+gk.Kind)
		}
	}
	return strings.Join(out, ",")
}

func orDefault(sa string) string {
	if sa == "" {
		return "<agent default>"
	}
	return sa
}

func orText(s, none string) string {
	if s == "" {
		return none
	}
	return s
}
