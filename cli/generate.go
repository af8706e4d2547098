package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

type generateOptions struct {
	kube       kubeFlags
	creds      repoCredsFlags
	filename   string
	clusters   string
	output     string
	gitCache   string
	gitTimeout time.Duration
	maxApps    int
}

func newGenerateCommand(s Streams) *cobra.Command {
	o := &generateOptions{}
	cmd := &cobra.Command{
		Use:   "generate -f APPSET.yaml [--clusters CLUSTERS.yaml]",
		Short: "Expand an ApplicationSet offline and print the Applications it would create",
		Long: `Expand an ApplicationSet without a hub: run its generators (reading Git
where they ask for it, and MemberClusters from --clusters) and render its
template. Print the Applications for review, for example in a pull request.
Nothing is written anywhere.`,
		Example: `  flotilla generate -f guestbook.yaml --clusters clusters.yaml
  kubectl get memberclusters -o yaml > clusters.yaml && flotilla generate -f guestbook.yaml --clusters clusters.yaml -o table`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd, s) },
	}
	o.bindOffline(cmd)
	cmd.Flags().StringVarP(&o.output, "output", "o", "yaml", "output format: yaml, json, table or wide")
	return cmd
}

// bindOffline binds the flags of an offline expansion (generate, render).
func (o *generateOptions) bindOffline(cmd *cobra.Command) {
	f := cmd.Flags()
	f.StringVarP(&o.filename, "filename", "f", "", "ApplicationSet YAML or JSON file ('-' for standard input)")
	f.StringVar(&o.clusters, "clusters", "", "MemberClusters for the clusters generator (YAML documents or a List)")
	f.StringVar(&o.gitCache, "git-cache", defaultGitCache(), "directory caching Git repositories")
	f.DurationVar(&o.gitTimeout, "git-timeout", git.DefaultTimeout, "timeout of each Git operation (and chart download)")
	f.IntVar(&o.maxApps, "max-applications", generators.DefaultMaxParams, "refuse sets that produce more Applications than this")
	o.kube.bind(f, "", "the hub (for --repo-creds-from-hub)")
	o.creds.bind(f, true)
	_ = cmd.MarkFlagRequired("filename")
}

// expand reads the set, the clusters and the credentials, and runs the
// generators offline; it returns the Git cache and credentials it used.
func (o *generateOptions) expand(ctx context.Context, s Streams) (*flotillav1.ApplicationSet, []*flotillav1.Application, *git.Cache, git.CredentialSource, error) {
	set, err := readApplicationSet(o.filename, s.In)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	opts := generators.Options{MaxParams: o.maxApps}
	if o.clusters != "" {
		c, err := readClustersFile(o.clusters)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		opts.Clusters = c
	}
	creds, err := o.creds.source(ctx, func(ctx context.Context) (*conn, error) { return (&hubOptions{kube: o.kube}).connect(ctx) })
	if err != nil {
		return nil, nil, nil, nil, err
	}
	cache, err := git.New(git.Options{Dir: o.gitCache, Timeout: o.gitTimeout, AllowLoopback: true, Credentials: creds}) // the user's own machine
	if err != nil {
		return nil, nil, nil, nil, err
	}
	opts.Git = generators.GitCache{Cache: cache}
	apps, err := generators.New(opts).Applications(ctx, set)
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("ApplicationSet %s: %w", set.Name, err)
	}
	return set, apps, cache, creds, nil
}

func defaultGitCache() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "flotilla", "git")
	}
	return filepath.Join(os.TempDir(), "flotilla-git")
}

func (o *generateOptions) run(cmd *cobra.Command, s Streams) error {
	switch o.output {
	case "yaml", "json", "table", "wide":
	default:
		return fmt.Errorf("unknown output format %q: use yaml, json, table or wide", o.output)
	}
	_, apps, _, _, err := o.expand(cmd.Context(), s)
	if err != nil {
		return err
	}
	return printApplications(s.Out, o.output, apps)
}

func readApplicationSet(filename string, stdin io.Reader) (*flotillav1.ApplicationSet, error) {
	var raw []byte
	var err error
	if filename == "-" {
		raw, err = io.ReadAll(io.LimitReader(stdin, 8<<20))
	} else {
		raw, err = os.ReadFile(filename)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", filename, err)
	}
	set := &flotillav1.ApplicationSet{}
	if err := yamlbound.Check(raw, yamlbound.Default); err != nil {
		return nil, fmt.Errorf("%s: %w", filename, err)
	}
	if err := yaml.UnmarshalStrict(raw, set); err != nil {
		return nil, fmt.Errorf("%s is not a valid ApplicationSet: %w", filename, err)
	}
	if set.Kind != "ApplicationSet" {
		return nil, fmt.Errorf("%s holds kind %q, want an ApplicationSet (apiVersion flotilla.dev/v1alpha1)", filename, set.Kind)
	}
	if set.Namespace == "" {
		set.Namespace = "default"
	}
	return set, nil
}

func printApplications(w io.Writer, format string, apps []*flotillav1.Application) error {
	list := &flotillav1.ApplicationList{}
	list.APIVersion, list.Kind = "v1", "List"
	for _, a := range apps {
		list.Items = append(list.Items, *a)
	}
	switch format {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(list)
	case "yaml":
		for i, a := range apps {
			if i > 0 {
				if _, err := io.WriteString(w, "---\n"); err != nil {
					return err
				}
			}
			raw, err := yaml.Marshal(a)
			if err != nil {
				return err
			}
			if _, err := w.Write(raw); err != nil {
				return err
			}
		}
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	header := []string{"NAMESPACE", "NAME", "CLUSTER", "DESTINATION-NAMESPACE", "PATH"}
	if format == "wide" {
		header = append(header, "REPO", "REVISION")
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, a := range apps {
		row := []string{a.Namespace, a.Name, a.Spec.Destination.Cluster, orNone(a.Spec.Destination.Namespace), orNone(a.Spec.Source.Path)}
		if format == "wide" {
			row = append(row, a.Spec.Source.RepoURL, orNone(a.Spec.Source.TargetRevision))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	if len(apps) == 0 {
		return errors.Join(tw.Flush(), writeString(w, "No Applications: the generators produced no parameter sets.\n"))
	}
	return tw.Flush()
}

func writeString(w io.Writer, s string) error {
	_, err := io.WriteString(w, s)
	return err
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}
