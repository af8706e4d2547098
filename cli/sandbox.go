package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/controlplane"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

// sandboxState is written by the sandbox supervisor once the fleet is up.
type sandboxState struct {
	PID        int      `json:"pid"`
	Kubeconfig string   `json:"kubeconfig"`
	Clusters   []string `json:"clusters"`
	RepoURL    string   `json:"repoURL"`
	RepoDir    string   `json:"repoDir"`
	AppSet     string   `json:"appSet"`
	Logs       string   `json:"logs"`
}

type sandboxOptions struct {
	dir             string
	clusters        int
	controlPlaneBin string
	binDir          string
	timeout         time.Duration
}

func defaultSandboxDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "flotilla", "sandbox")
	}
	return filepath.Join(os.TempDir(), "flotilla-sandbox")
}

func newSandboxCommand(s Streams) *cobra.Command {
	o := &sandboxOptions{}
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run a whole local fleet (hub + spokes, Git, hub and agents) on 127.0.0.1",
		Long: `A local fleet for trying Flotilla: one etcd, a hub kube-apiserver, N spoke
clusters (each with kube-apiserver, kube-controller-manager, kube-scheduler
and kwok, so pods "run" and Deployments become Available), a Git server with
a sample repository, flotilla-hub and one flotilla-agent per spoke. The
spokes are registered with 'flotilla cluster register' and labelled
env=dev, and an example ApplicationSet deploys every app of the sample
repository to every spoke.

It uses the control-plane binaries that 'make testbin' builds. Everything
binds 127.0.0.1 and lives under --dir; 'flotilla sandbox down' removes it.`,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&o.dir, "dir", defaultSandboxDir(), "folder of the sandbox (state, logs, data)")
	up := &cobra.Command{
		Use:     "up",
		Short:   "Start the sandbox fleet and print its kubeconfig",
		Example: "  flotilla sandbox up --clusters 3\n  export KUBECONFIG=$(flotilla sandbox kubeconfig)\n  flotilla status",
		Args:    cobra.NoArgs,
		RunE:    func(cmd *cobra.Command, _ []string) error { return o.up(cmd.Context(), s) },
	}
	up.Flags().IntVar(&o.clusters, "clusters", 3, "number of spoke clusters")
	up.Flags().StringVar(&o.controlPlaneBin, "control-plane-bin", "", "folder with kube-apiserver, etcd, ... (default: $KUBEBUILDER_ASSETS or the 'make testbin' cache)")
	up.Flags().StringVar(&o.binDir, "bin-dir", "", "folder with flotilla-hub and flotilla-agent (default: next to this binary)")
	up.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "how long to wait for the fleet")
	serve := &cobra.Command{
		Use:    "serve",
		Hidden: true, // the supervisor `up` starts in the background
		Args:   cobra.NoArgs,
		RunE:   func(cmd *cobra.Command, _ []string) error { return o.serve(cmd.Context()) },
	}
	serve.Flags().AddFlagSet(up.Flags())
	status := &cobra.Command{
		Use:   "status",
		Short: "Show whether the sandbox runs, its clusters and every ApplicationSet's rollout",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.status(cmd.Context(), s) },
	}
	down := &cobra.Command{
		Use:   "down",
		Short: "Stop the sandbox and delete everything it created",
		Args:  cobra.NoArgs,
		RunE:  func(cmd *cobra.Command, _ []string) error { return o.down(s) },
	}
	kubeconfig := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the path of the sandbox kubeconfig (contexts flotilla-hub, spoke-1, ...)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			st, err := o.running()
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(s.Out, st.Kubeconfig)
			return err
		},
	}
	cmd.AddCommand(up, serve, status, down, kubeconfig)
	return cmd
}

func (o *sandboxOptions) statePath() string    { return filepath.Join(o.dir, "state.json") }
func (o *sandboxOptions) progressPath() string { return filepath.Join(o.dir, "progress.log") }

func alive(pid int) bool { return pid > 0 && syscall.Kill(pid, 0) == nil }

// running returns the state of a running sandbox.
func (o *sandboxOptions) running() (*sandboxState, error) {
	raw, err := os.ReadFile(o.statePath())
	if err != nil {
		return nil, fmt.Errorf("no sandbox is running in %s: start one with 'flotilla sandbox up'", o.dir)
	}
	st := &sandboxState{}
	if err := json.Unmarshal(raw, st); err != nil {
		return nil, fmt.Errorf("read %s: %w", o.statePath(), err)
	}
	if !alive(st.PID) {
		return nil, fmt.Errorf("the sandbox in %s is not running (its supervisor, pid %d, is gone): run 'flotilla sandbox down', then 'flotilla sandbox up'", o.dir, st.PID)
	}
	return st, nil
}

func (o *sandboxOptions) up(ctx context.Context, s Streams) error {
	if o.clusters < 1 || o.clusters > 10 {
		return fmt.Errorf("--clusters %d: use 1 to 10", o.clusters)
	}
	if st, err := o.running(); err == nil {
		fmt.Fprintf(s.Out, "The sandbox is already running (%d clusters).\n\n", len(st.Clusters))
		return o.printNext(s, st)
	}
	if _, err := os.Stat(o.dir); err == nil {
		if entries, _ := os.ReadDir(o.dir); len(entries) > 0 {
			return fmt.Errorf("%s holds a stopped sandbox: run 'flotilla sandbox down' first", o.dir)
		}
	}
	if o.controlPlaneBin == "" {
		var err error
		if o.controlPlaneBin, err = controlplane.Locate(); err != nil {
			return err
		}
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	if o.binDir == "" {
		o.binDir = filepath.Dir(self)
	}
	for _, b := range []string{"flotilla-hub", "flotilla-agent"} {
		if _, err := os.Stat(filepath.Join(o.binDir, b)); err != nil {
			return fmt.Errorf("%s not found in %s: run 'make build' and use bin/flotilla, or pass --bin-dir", b, o.binDir)
		}
	}
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return err
	}
	logFile, err := os.Create(filepath.Join(o.dir, "sandbox.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	// The supervisor outlives this command: its own session, no stdin.
	cmd := exec.Command(self, "sandbox", "serve", "--dir", o.dir, "--clusters", strconv.Itoa(o.clusters),
		"--control-plane-bin", o.controlPlaneBin, "--bin-dir", o.binDir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start the sandbox supervisor: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	fmt.Fprintf(s.ErrOut, "Starting a sandbox fleet with %d clusters in %s\n", o.clusters, o.dir)

	deadline := time.After(o.timeout)
	var printed int64
	tick := time.NewTicker(300 * time.Millisecond)
	defer tick.Stop()
	for {
		printed = tailInto(o.progressPath(), printed, s.ErrOut)
		if raw, err := os.ReadFile(o.statePath()); err == nil {
			st := &sandboxState{}
			if json.Unmarshal(raw, st) == nil && st.PID == cmd.Process.Pid {
				_ = cmd.Process.Release()
				fmt.Fprintf(s.Out, "\nThe sandbox is up: a hub and %d clusters.\n\n", len(st.Clusters))
				return o.printNext(s, st)
			}
		}
		select {
		case err := <-exited:
			tailInto(o.progressPath(), printed, s.ErrOut)
			return fmt.Errorf("the sandbox failed to start (%w); its log:\n%s\nrun 'flotilla sandbox down' to clean up", err, controlplane.TailFile(logFile.Name(), 15))
		case <-deadline:
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the sandbox did not start within %s: see %s and %s/logs, then 'flotilla sandbox down'", o.timeout, logFile.Name(), o.dir)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// tailInto copies what was appended to path since offset.
func tailInto(path string, offset int64, w io.Writer) int64 {
	f, err := os.Open(path)
	if err != nil {
		return offset
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return offset
	}
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return offset // a partial line waits for its end
		}
		offset += int64(len(line))
		fmt.Fprint(w, "  "+line)
	}
}

func (o *sandboxOptions) printNext(s Streams, st *sandboxState) error {
	_, err := fmt.Fprintf(s.Out, `Kubeconfig: %s
  contexts: flotilla-hub (current), %s

Try:
  export KUBECONFIG=%s
  flotilla status                      # every ApplicationSet's rollout
  flotilla status sample               # one row per cluster and app
  flotilla cluster list
  flotilla dashboard --open            # the fleet in your browser, live
  kubectl --context %s get deployments -A

The sample repository is %s (a working tree: %s).
Commit there (e.g. change an image tag in apps/guestbook/kustomization.yaml,
or replicas in the Helm chart's apps/hello/values.yaml) and watch the
rollout with 'flotilla status --watch'.

Stop and delete everything: flotilla sandbox down
`, st.Kubeconfig, strings.Join(st.Clusters, ", "), st.Kubeconfig, st.Clusters[0], st.RepoURL, st.RepoDir)
	return err
}

// serve is the supervisor: it starts the fleet, writes the state, and
// stops everything on SIGTERM or SIGINT.
func (o *sandboxOptions) serve(ctx context.Context) error {
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	progress, err := os.Create(o.progressPath())
	if err != nil {
		return err
	}
	defer progress.Close()
	var spokes []string
	for i := 1; i <= o.clusters; i++ {
		spokes = append(spokes, fmt.Sprintf("spoke-%d", i))
	}
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: o.dir, Spokes: spokes, ControlPlaneBin: o.controlPlaneBin, FlotillaBin: o.binDir,
		SpokeLabels: map[string]string{"env": "dev"}, Progress: progress})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(progress, "Stopping the fleet")
		if err := f.Stop(); err != nil {
			fmt.Fprintln(progress, "Stop:", err)
		}
	}()
	fmt.Fprintln(progress, "Creating the sample repository and applying the example ApplicationSet")
	repo, _, err := f.SandboxRepo()
	if err != nil {
		return err
	}
	set := localfleet.SampleAppSet("sample", "default", repo.URL, "dev")
	if err := f.ApplyYAML(ctx, "sample-appset", set); err != nil {
		return err
	}
	want := int32(len(spokes) * (len(localfleet.SampleApps) + 1)) // and the Helm chart
	fmt.Fprintf(progress, "Waiting for %d Applications to be Healthy\n", want)
	if err := waitSetHealthy(ctx, f, "default", "sample", want, progress); err != nil {
		return err
	}
	st := sandboxState{PID: os.Getpid(), Kubeconfig: f.Kubeconfig, Clusters: spokes, RepoURL: repo.URL, RepoDir: repo.Dir(),
		AppSet: filepath.Join(o.dir, "sample-appset.yaml"), Logs: f.LogDir}
	raw, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(o.statePath()+".tmp", raw, 0o600); err != nil {
		return err
	}
	if err := os.Rename(o.statePath()+".tmp", o.statePath()); err != nil {
		return err
	}
	fmt.Fprintln(progress, "Sandbox ready")
	// Watch the fleet's processes: report (not hide) one that dies.
	tick := time.NewTicker(5 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			for _, p := range f.Processes() {
				if p.Pid() != 0 && !p.Running() {
					fmt.Fprintf(progress, "%s exited; see %s\n", p.Name, p.Log)
				}
			}
		}
	}
}

func (o *sandboxOptions) status(ctx context.Context, s Streams) error {
	st, err := o.running()
	if err != nil {
		return err
	}
	fmt.Fprintf(s.Out, "Sandbox running (supervisor pid %d), kubeconfig %s\n\n", st.PID, st.Kubeconfig)
	code := Main(ctx, []string{"cluster", "list", "--kubeconfig", st.Kubeconfig}, nil, s.Out, s.ErrOut)
	fmt.Fprintln(s.Out)
	code |= Main(ctx, []string{"status", "--kubeconfig", st.Kubeconfig}, nil, s.Out, s.ErrOut)
	if code != 0 {
		return errors.New("the sandbox's hub did not answer: see the logs in " + st.Logs)
	}
	return nil
}

func (o *sandboxOptions) down(s Streams) error {
	raw, err := os.ReadFile(o.statePath())
	st := &sandboxState{}
	if err == nil {
		_ = json.Unmarshal(raw, st)
	}
	if alive(st.PID) {
		fmt.Fprintf(s.ErrOut, "Stopping the sandbox (supervisor pid %d)\n", st.PID)
		_ = syscall.Kill(st.PID, syscall.SIGTERM)
		deadline := time.Now().Add(90 * time.Second)
		for alive(st.PID) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
		if alive(st.PID) {
			_ = syscall.Kill(st.PID, syscall.SIGKILL) // its processes die with it (Pdeathsig)
			time.Sleep(time.Second)
		}
	}
	if _, err := os.Stat(o.dir); os.IsNotExist(err) {
		fmt.Fprintln(s.Out, "No sandbox to remove.")
		return nil
	}
	if err := os.RemoveAll(o.dir); err != nil {
		return fmt.Errorf("remove %s: %w", o.dir, err)
	}
	fmt.Fprintf(s.Out, "The sandbox is stopped and %s removed.\n", o.dir)
	return nil
}

// waitSetHealthy waits until the set reports want Healthy Applications,
// printing the count as it moves.
func waitSetHealthy(ctx context.Context, f *localfleet.Fleet, ns, name string, want int32, progress io.Writer) error {
	last := int32(-1)
	deadline := time.Now().Add(5 * time.Minute)
	for time.Now().Before(deadline) {
		set := &flotillav1.ApplicationSet{}
		if err := f.Hub.Client.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, set); err == nil {
			if h := set.Status.Summary.Healthy; h != last {
				fmt.Fprintf(progress, "  %d/%d Healthy\n", h, want)
				last = h
			}
			if set.Status.Summary.Applications == want && set.Status.Summary.Healthy == want {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
	return fmt.Errorf("ApplicationSet %s/%s: %d/%d Applications Healthy after 5 minutes: see 'flotilla status %s -n %s'", ns, name, last, want, name, ns)
}
