// Package cli implements the flotilla command line, kubectl-style.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"

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
	root.AddCommand(newGenerateCommand(s), newVersionCommand(s))
	return root
}

func newVersionCommand(s Streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the client version",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			_, err := fmt.Fprintf(s.Out, "Client Version: %s\n", version.Version)
			return err
		},
	}
}
