// Package cli implements the flotilla command line, kubectl-style.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/flotilla-dev/flotilla/internal/version"
)

// Streams are the command's standard streams.
type Streams struct {
	In          io.Reader
	Out, ErrOut io.Writer
}

// Main runs the CLI and returns the process exit code.
func Main(ctx context.Context, args []string, in io.Reader, out, errOut io.Writer) int {
	root := NewRootCommand(Streams{In: in, Out: out, ErrOut: errOut})
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintf(errOut, "error: %v\n", err)
		return 1
	}
	return 0
}

// NewRootCommand builds the flotilla command tree.
func NewRootCommand(s Streams) *cobra.Command {
	root := &cobra.Command{
		Use:           "flotilla",
		Short:         "Deploy every app to every cluster of a fleet, from Git",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(s.In)
	root.SetOut(s.Out)
	root.SetErr(s.ErrOut)
	root.AddCommand(newInstallCommand(s), newUninstallCommand(s), newClusterCommand(s), newStatusCommand(s),
		newGenerateCommand(s), newDiffCommand(s), newRenderCommand(s), newDashboardCommand(s), newRefreshCommand(s), newRolloutCommand(s), newProjectCommand(s), newRepoCommand(s), newSandboxCommand(s), newVersionCommand(s))
	return root
}

type versionOptions struct {
	hubOptions
	namespace  string
	clientOnly bool
}

// Versions is `flotilla version -o json`.
type Versions struct {
	Client string `json:"clientVersion"`
	Hub    string `json:"hubVersion,omitempty"`
}

func newVersionCommand(s Streams) *cobra.Command {
	o := &versionOptions{}
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the client and hub versions",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output, "table", "json", "yaml"); err != nil {
				return err
			}
			v := Versions{Client: version.Version}
			var hubErr error
			if !o.clientOnly {
				v.Hub, hubErr = o.hubVersion(cmd.Context())
			}
			var err error
			switch o.output {
			case "json":
				err = printJSON(s.Out, v)
			case "yaml":
				err = printYAML(s.Out, v)
			default:
				_, err = fmt.Fprintf(s.Out, "Client Version: %s\n", v.Client)
				if err == nil && v.Hub != "" {
					_, err = fmt.Fprintf(s.Out, "Hub Version: %s\n", v.Hub)
				}
			}
			if err != nil {
				return err
			}
			return hubErr
		},
	}
	o.bind(cmd, "table, json or yaml")
	cmd.Flags().StringVarP(&o.namespace, "namespace", "n", "", "namespace of the hub (default: where 'flotilla install' put it)")
	cmd.Flags().BoolVar(&o.clientOnly, "client", false, "print the client version only (no hub needed)")
	return cmd
}

// hubVersion reads the version label of the hub's Deployment.
func (o *versionOptions) hubVersion(ctx context.Context) (string, error) {
	hub, err := o.connect(ctx)
	if err != nil {
		return "", err
	}
	if o.namespace == "" {
		o.namespace = hub.hubNamespace(ctx)
	}
	d := &appsv1.Deployment{}
	if err := hub.client.Get(ctx, client.ObjectKey{Namespace: o.namespace, Name: "flotilla-hub"}, d); err != nil {
		if apierrors.IsNotFound(err) {
			return "unknown (no flotilla-hub Deployment in " + o.namespace + ": the hub runs elsewhere)", nil
		}
		return "", fmt.Errorf("read the hub Deployment: %w", err)
	}
	if v := d.Labels["app.kubernetes.io/version"]; v != "" {
		return v, nil
	}
	return "unknown", nil
}
