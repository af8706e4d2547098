package cli

import (
	"context"
	"fmt"
	"net"
	"os/exec"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/flotilla-dev/flotilla/fleet/dashboard"
)

type dashboardOptions struct {
	kube    kubeFlags
	address string
	open    bool
}

func newDashboardCommand(s Streams) *cobra.Command {
	o := &dashboardOptions{}
	cmd := &cobra.Command{
		Use:   "dashboard [--context C] [--address 127.0.0.1:8080] [--open]",
		Short: "Serve the fleet dashboard on this machine, reading the hub as your kubeconfig's user",
		Long: `Serve the fleet dashboard locally, like kubectl proxy: every page is read
from the hub with your own kubeconfig credentials, so it shows exactly what
you may read. The Fleet page is a grid of ApplicationSets × clusters; set,
cluster and Application pages say what is broken and why. Pages update
live. It listens on this machine only (a loopback address); stop it with
Ctrl-C.`,
		Example: `  flotilla dashboard
  flotilla dashboard --context prod-hub --address 127.0.0.1:9090 --open`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), s) },
	}
	o.kube.bind(cmd.Flags(), "", "the hub")
	cmd.Flags().StringVar(&o.address, "address", "127.0.0.1:8080", "address to listen on (loopback only; port 0 picks a free one)")
	cmd.Flags().BoolVar(&o.open, "open", false, "open the dashboard in your browser (xdg-open/open)")
	return cmd
}

func (o *dashboardOptions) run(ctx context.Context, s Streams) error {
	host, _, err := net.SplitHostPort(o.address)
	if err != nil {
		return fmt.Errorf("--address %q: %w (use HOST:PORT, e.g. 127.0.0.1:8080)", o.address, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--address %s is not a loopback address: the dashboard reads with your credentials, so it serves this machine only (on the hub, use the chart's dashboard.enabled)", o.address)
	}
	hub, err := (&hubOptions{kube: o.kube}).connect(ctx)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", o.address)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", o.address, err)
	}
	addr := ln.Addr().String()
	_, port, _ := net.SplitHostPort(addr)
	srv, err := dashboard.New(dashboard.Options{Local: hub.config, Who: "context " + hub.context, Hosts: []string{addr, "localhost:" + port}})
	if err != nil {
		ln.Close()
		return err
	}
	url := "http://" + addr + "/"
	fmt.Fprintf(s.Out, "Flotilla dashboard for context %s: %s\n(reading as your kubeconfig's user; Ctrl-C stops it)\n", hub.context, url)
	if o.open {
		for _, opener := range []string{"xdg-open", "open"} {
			if path, err := exec.LookPath(opener); err == nil {
				_ = exec.Command(path, url).Start()
				break
			}
		}
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return srv.Serve(ctx, ln)
}
