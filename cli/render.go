package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
)

type renderOptions struct {
	generateOptions
	cluster string
	render  agent.RenderOptions
	chartMB int64
}

func newRenderCommand(s Streams) *cobra.Command {
	o := &renderOptions{}
	cmd := &cobra.Command{
		Use:   "render -f APPSET.yaml [--clusters CLUSTERS.yaml] [--cluster NAME] [-o yaml|dir=PATH]",
		Short: "Render the manifests every cluster would get from an ApplicationSet, offline (for CI)",
		Long: `Expand an ApplicationSet like 'flotilla generate', then render each
Application's source with the agent's own render code: Kustomize, plain
manifest directories and Helm charts (from Git, Helm repositories and OCI
registries). Print the objects (with each Application's Helm hooks), or
write them to one file per Application under a directory. A render error
exits non-zero and names the Application and the file at fault.

Charts see Helm's default capabilities here; on a spoke they see its real
Kubernetes version and APIs.`,
		Example: `  flotilla render -f guestbook.yaml --clusters clusters.yaml
  flotilla render -f guestbook.yaml --clusters clusters.yaml --cluster prod-eu-1 | kubeconform -strict
  flotilla render -f guestbook.yaml --clusters clusters.yaml -o dir=rendered/ --repo-creds creds.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), s) },
	}
	o.bindOffline(cmd)
	f := cmd.Flags()
	f.StringVar(&o.cluster, "cluster", "", "render only the Applications for this cluster")
	f.StringVarP(&o.output, "output", "o", "yaml", "yaml, or dir=PATH: one file per Application, PATH/CLUSTER/APPLICATION.yaml")
	f.Int64Var(&o.render.MaxTotalSize, "max-render-bytes", agent.DefaultMaxTotalSize, "most bytes loaded from one repository for a render (as the agent's flag)")
	f.IntVar(&o.render.MaxObjects, "max-objects", agent.DefaultMaxObjects, "most objects one Application may render (as the agent's flag)")
	f.BoolVar(&o.render.AllowRemoteBases, "allow-remote-bases", false, "let kustomizations reference remote bases (as the agent's flag)")
	f.Int64Var(&o.chartMB, "max-chart-bytes", helmchart.DefaultMaxArchiveBytes, "largest chart archive fetched (as the agent's flag)")
	return cmd
}

func (o *renderOptions) run(ctx context.Context, s Streams) error {
	dir, toDir := strings.CutPrefix(o.output, "dir=")
	if o.output != "yaml" && (!toDir || dir == "") {
		return fmt.Errorf("unknown output %q: use yaml or dir=PATH", o.output)
	}
	set, apps, cache, creds, err := o.expand(ctx, s)
	if err != nil {
		return err
	}
	charts := helmchart.New(helmchart.Options{Credentials: creds, MaxArchiveBytes: o.chartMB, Timeout: o.gitTimeout, AllowLoopback: true})
	sort.Slice(apps, func(i, j int) bool { return apps[i].Name < apps[j].Name })
	rendered := 0
	for _, app := range apps {
		if o.cluster != "" && app.Spec.Destination.Cluster != o.cluster {
			continue
		}
		objs, err := RenderApplication(ctx, cache, charts, app, agent.Capabilities{}, o.render)
		if err != nil {
			return fmt.Errorf("render of Application %s (cluster %s): %w", app.Name, app.Spec.Destination.Cluster, err)
		}
		if toDir {
			err = writeRenderFile(dir, app, objs)
		} else {
			err = writeRender(s.Out, app, objs)
		}
		if err != nil {
			return err
		}
		rendered++
	}
	if toDir {
		fmt.Fprintf(s.ErrOut, "Rendered %d Applications into %s.\n", rendered, dir)
	}
	if rendered == 0 && o.cluster != "" {
		return fmt.Errorf("no Application of %s is for cluster %s", set.Name, o.cluster)
	}
	return nil
}

func readClustersFile(name string) (generators.StaticClusters, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, fmt.Errorf("read --clusters: %w", err)
	}
	defer f.Close()
	c, err := generators.ReadClusters(f)
	if err != nil {
		return nil, fmt.Errorf("read --clusters %s: %w", name, err)
	}
	return c, nil
}

// RenderApplication renders one Application as its agent does: the same
// fetch (Git commit or chart version) and the same render code, in
// process. Hooks come last, in their run order.
func RenderApplication(ctx context.Context, cache *git.Cache, charts *helmchart.Fetcher, app *flotillav1.Application, caps agent.Capabilities, opts agent.RenderOptions) ([]*unstructured.Unstructured, error) {
	src := app.Spec.Source
	in := agent.RenderInput{Source: src, Capabilities: caps, Release: agent.HelmRelease{Name: app.Name, Namespace: app.Spec.Destination.Namespace}}
	if src.Chart != "" {
		c, err := charts.Fetch(ctx, src.RepoURL, src.Chart, src.TargetRevision)
		if err != nil {
			return nil, err
		}
		in.Chart = c
	} else {
		snap, err := cache.Snapshot(ctx, src.RepoURL, src.TargetRevision)
		if err != nil {
			return nil, err
		}
		in.Tree = snap
	}
	return agent.RenderSource(in, opts)
}

func writeRender(w io.Writer, app *flotillav1.Application, objs []*unstructured.Unstructured) error {
	if _, err := fmt.Fprintf(w, "# Application %s/%s, cluster %s: %d objects\n", app.Namespace, app.Name, app.Spec.Destination.Cluster, len(objs)); err != nil {
		return err
	}
	for _, o := range objs {
		raw, err := yaml.Marshal(o.Object)
		if err != nil {
			return err
		}
		if _, err := fmt.Fprintf(w, "---\n%s", raw); err != nil {
			return err
		}
	}
	return nil
}

func writeRenderFile(dir string, app *flotillav1.Application, objs []*unstructured.Unstructured) error {
	sub := filepath.Join(dir, filepath.Base(app.Spec.Destination.Cluster))
	if err := os.MkdirAll(sub, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(sub, filepath.Base(app.Name)+".yaml"))
	if err != nil {
		return err
	}
	if err := writeRender(f, app, objs); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
