// Package localfleet starts a whole Flotilla fleet on 127.0.0.1 for the e2e
// tests, the benchmarks and `flotilla sandbox`: one etcd (a prefix per
// cluster), a hub kube-apiserver with kube-controller-manager, N spokes with
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok, a Git
// server over smart HTTP, and the real flotilla-hub and flotilla-agent
// binaries as processes. Every process logs into LogDir and dies with the
// process that started the fleet.
package localfleet

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/controlplane"
	"github.com/flotilla-dev/flotilla/internal/gitserver"
)

// HubContext is the hub's context in the fleet kubeconfig.
const HubContext = "flotilla-hub"

// AgentLeaseDuration is the local agents' heartbeat Lease (renewed every
// 3s): the hub reports a dead agent's Applications Unknown within it.
const AgentLeaseDuration = 12 * time.Second

// Options shape a fleet.
type Options struct {
	// Dir holds everything (certificates, etcd data, logs, repositories).
	Dir string
	// Spokes are the spoke clusters to start (names).
	Spokes []string
	// ControlPlaneBin holds kube-apiserver, etcd, kube-controller-manager,
	// kube-scheduler and kwok (`make testbin`).
	ControlPlaneBin string
	// FlotillaBin holds flotilla, flotilla-hub and flotilla-agent.
	FlotillaBin string
	// SpokeLabels are set on every spoke's MemberCluster at registration.
	SpokeLabels map[string]string
	// HubArgs and AgentArgs are added to the processes' flags.
	HubArgs, AgentArgs []string
	// HubEnv is added to flotilla-hub's environment (KEY=VALUE).
	HubEnv []string
	// Progress receives one line per step (nil: discarded).
	Progress io.Writer
}

// Fleet is a running fleet.
type Fleet struct {
	Dir, LogDir string
	// Kubeconfig holds contexts for the hub (HubContext) and every spoke
	// (named after it); its current context is the hub.
	Kubeconfig string
	Hub        *Cluster
	Spokes     map[string]*Cluster
	Git        *gitserver.Server
	// HubProcess is flotilla-hub.
	HubProcess *controlplane.Process
	Etcd       *controlplane.Process

	opts    Options
	pki     *pki
	etcdURL string
	gitAddr string
	mu      sync.Mutex
	order   []string                // spoke names in start order
	extra   []*controlplane.Process // agents started by StartExtraAgent
}

// Scheme knows the kinds the framework reads.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, apiextensionsv1.AddToScheme, flotillav1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

func (f *Fleet) progress(format string, args ...any) {
	if f.opts.Progress != nil {
		fmt.Fprintf(f.opts.Progress, format+"\n", args...)
	}
}

// Start starts a fleet: control planes, Git, `flotilla install` on the hub
// (without the Deployment: flotilla-hub runs as a process), and every spoke
// registered with `flotilla cluster register --agent-mode local` plus its
// flotilla-agent process. On error everything started is stopped.
func Start(ctx context.Context, opts Options) (*Fleet, error) {
	for _, b := range []string{"flotilla", "flotilla-hub", "flotilla-agent"} {
		if _, err := os.Stat(filepath.Join(opts.FlotillaBin, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run 'make build'", b, opts.FlotillaBin)
		}
	}
	for _, b := range []string{"kube-apiserver", "etcd", "kube-controller-manager", "kube-scheduler", "kwok"} {
		if _, err := os.Stat(filepath.Join(opts.ControlPlaneBin, b)); err != nil {
			return nil, fmt.Errorf("%s not found in %s: run 'make testbin'", b, opts.ControlPlaneBin)
		}
	}
	f := &Fleet{Dir: opts.Dir, LogDir: filepath.Join(opts.Dir, "logs"), Spokes: map[string]*Cluster{}, opts: opts, Kubeconfig: filepath.Join(opts.Dir, "kubeconfig")}
	if err := os.MkdirAll(f.LogDir, 0o755); err != nil {
		return nil, err
	}
	ready := false
	defer func() {
		if !ready {
			_ = f.Stop()
		}
	}()
	var err error
	if f.pki, err = newPKI(filepath.Join(f.Dir, "pki")); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	start := time.Now()
	f.progress("Starting etcd")
	if err := f.startEtcd(); err != nil {
		return nil, err
	}
	if err := f.startControlPlanes(ctx); err != nil {
		return nil, err
	}
	f.progress("Control planes ready in %s", time.Since(start).Round(time.Second))

	f.progress("Starting the Git server")
	if err := f.StartGit(); err != nil {
		return nil, err
	}
	f.progress("Installing Flotilla on the hub (flotilla install)")
	if _, err := f.Flotilla(ctx, "install", "--set", "deployment.create=false", "--wait=false"); err != nil {
		return nil, err
	}
	f.progress("Starting flotilla-hub")
	if err := f.StartHub(); err != nil {
		return nil, err
	}
	for _, name := range opts.Spokes {
		f.progress("Registering %s (flotilla cluster register) and starting its agent", name)
		if err := f.Register(ctx, name, opts.SpokeLabels); err != nil {
			return nil, err
		}
	}
	f.progress("Fleet ready in %s", time.Since(start).Round(time.Second))
	ready = true
	return f, nil
}

// startControlPlanes starts the hub's and every spoke's control plane.
func (f *Fleet) startControlPlanes(ctx context.Context) error {
	var err error
	f.progress("Starting the hub control plane")
	if f.Hub, err = f.newCluster("hub", false); err != nil {
		return err
	}
	clusters := []*Cluster{f.Hub}
	for _, name := range f.opts.Spokes {
		c, err := f.newCluster(name, true)
		if err != nil {
			return err
		}
		f.Spokes[name] = c
		f.order = append(f.order, name)
		clusters = append(clusters, c)
	}
	if err := f.writeKubeconfig(); err != nil {
		return err
	}
	// Control planes start in parallel: on 2 cores this halves start-up.
	errs := make(chan error, len(clusters))
	for _, c := range clusters {
		go func() { errs <- c.start(ctx) }()
		if c != f.Hub {
			f.progress("Starting spoke %s (kube-apiserver, kube-controller-manager, kube-scheduler, kwok)", c.Name)
		}
	}
	for range clusters {
		err = errors.Join(err, <-errs)
	}
	return err
}

func (f *Fleet) startEtcd() error {
	var err error
	if f.Etcd, f.etcdURL, err = controlplane.Etcd(f.opts.ControlPlaneBin, filepath.Join(f.Dir, "etcd"), filepath.Join(f.LogDir, "etcd.log")); err != nil {
		return err
	}
	return f.Etcd.Start()
}

// writeKubeconfig merges every cluster's admin context into f.Kubeconfig.
func (f *Fleet) writeKubeconfig() error {
	merged := clientcmdapi.NewConfig()
	add := func(context string, c *Cluster) error {
		cfg, err := clientcmd.LoadFromFile(c.Kubeconfig)
		if err != nil {
			return err
		}
		cur := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[context] = cfg.Clusters[cur.Cluster]
		merged.AuthInfos[context+"-admin"] = cfg.AuthInfos[cur.AuthInfo]
		merged.Contexts[context] = &clientcmdapi.Context{Cluster: context, AuthInfo: context + "-admin"}
		return nil
	}
	if err := add(HubContext, f.Hub); err != nil {
		return err
	}
	for name, c := range f.Spokes {
		if err := add(name, c); err != nil {
			return err
		}
	}
	merged.CurrentContext = HubContext
	return clientcmd.WriteToFile(*merged, f.Kubeconfig)
}

// StartGit (re)starts the Git server on the same address.
func (f *Fleet) StartGit() error {
	s, err := gitserver.StartAt(filepath.Join(f.Dir, "git", "repos"), filepath.Join(f.Dir, "git", "work"), f.gitAddr)
	if err != nil {
		return fmt.Errorf("git server: %w", err)
	}
	f.Git, f.gitAddr = s, strings.TrimPrefix(s.URL, "http://")
	return nil
}

// StopGit stops the Git server (scenario: Git is down).
func (f *Fleet) StopGit() error {
	if f.Git == nil {
		return nil
	}
	err := f.Git.Close()
	return err
}

// StartHub (re)starts flotilla-hub.
func (f *Fleet) StartHub() error {
	if f.HubProcess == nil {
		probe, err := controlplane.FreePort()
		if err != nil {
			return err
		}
		args := []string{"--kubeconfig=" + f.Hub.Kubeconfig, "--namespace=" + flotillav1.SystemNamespace,
			"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probe),
			"--git-cache-dir=" + filepath.Join(f.Dir, "hub-git-cache"), "--allow-loopback-repositories", "--probe-interval=2s", "--heartbeat-grace=15s",
			"--git-poll-interval=15s", "--git-timeout=10s", "--cluster-timeout=5s",
			// A local fleet is one team's: ApplicationSets in any namespace.
			"--application-set-namespaces=*"}
		f.HubProcess = &controlplane.Process{Name: "flotilla-hub", Path: filepath.Join(f.opts.FlotillaBin, "flotilla-hub"), Log: filepath.Join(f.LogDir, "flotilla-hub.log"),
			Args: append(args, f.opts.HubArgs...), Env: f.opts.HubEnv}
	}
	return f.HubProcess.Start()
}

// Register registers a started spoke with `flotilla cluster register
// --agent-mode local` and starts its flotilla-agent.
func (f *Fleet) Register(ctx context.Context, name string, labels map[string]string) error {
	c := f.Spokes[name]
	if c == nil {
		return fmt.Errorf("no spoke %s", name)
	}
	args := []string{"cluster", "register", name, "--context", name, "--hub-context", HubContext, "--agent-mode", "local", "--timeout", "2m"}
	if len(labels) > 0 {
		var parts []string
		for k, v := range labels {
			parts = append(parts, k+"="+v)
		}
		args = append(args, "--labels", strings.Join(parts, ","))
	}
	if _, err := f.Flotilla(ctx, args...); err != nil {
		return err
	}
	return f.StartAgent(name)
}

// StartAgent (re)starts a spoke's flotilla-agent.
func (f *Fleet) StartAgent(name string) error {
	c := f.Spokes[name]
	if c.Agent == nil {
		probe, err := controlplane.FreePort()
		if err != nil {
			return err
		}
		args := []string{"--kubeconfig=" + c.Kubeconfig, "--namespace=" + flotillav1.SystemNamespace, "--identity=" + name + "-agent",
			"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probe),
			"--git-cache-dir=" + filepath.Join(f.Dir, "clusters", name, "git-cache"), "--allow-loopback-repositories", "--sync-interval=15s", "--heartbeat-interval=3s", "--lease-duration=" + AgentLeaseDuration.String(), "--health-interval=1s",
			// As the agent chart starts it: Applications are applied as its ServiceAccounts.
			"--default-service-account=flotilla-default"}
		c.Agent = &controlplane.Process{Name: name + "/flotilla-agent", Path: filepath.Join(f.opts.FlotillaBin, "flotilla-agent"), Log: filepath.Join(f.LogDir, name+"-flotilla-agent.log"),
			Args: append(args, f.opts.AgentArgs...)}
	}
	return c.Agent.Start()
}

// AddSpoke starts one more spoke control plane (not registered).
func (f *Fleet) AddSpoke(ctx context.Context, name string) (*Cluster, error) {
	c, err := f.newCluster(name, true)
	if err != nil {
		return nil, err
	}
	f.mu.Lock()
	f.Spokes[name] = c
	f.order = append(f.order, name)
	f.mu.Unlock()
	if err := c.start(ctx); err != nil {
		return nil, err
	}
	return c, f.writeKubeconfig()
}

// Flotilla runs the flotilla CLI against the fleet kubeconfig and returns
// its standard output; the error carries its standard error.
func (f *Fleet) Flotilla(ctx context.Context, args ...string) (string, error) {
	return f.run(ctx, filepath.Join(f.opts.FlotillaBin, "flotilla"), args)
}

// Kubectl runs kubectl against the fleet kubeconfig.
func (f *Fleet) Kubectl(ctx context.Context, args ...string) (string, error) {
	return f.run(ctx, filepath.Join(f.opts.ControlPlaneBin, "kubectl"), args)
}

func (f *Fleet) run(ctx context.Context, path string, args []string) (string, error) {
	cmd := exec.CommandContext(ctx, path, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+f.Kubeconfig)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w\n%s", filepath.Base(path), strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

// Processes lists every process, in start order.
func (f *Fleet) Processes() []*controlplane.Process {
	var out []*controlplane.Process
	if f.Etcd != nil {
		out = append(out, f.Etcd)
	}
	if f.Hub != nil {
		out = append(out, f.Hub.Processes()...)
	}
	f.mu.Lock()
	for _, n := range f.order {
		out = append(out, f.Spokes[n].Processes()...)
	}
	f.mu.Unlock()
	if f.HubProcess != nil {
		out = append(out, f.HubProcess)
	}
	f.mu.Lock()
	out = append(out, f.extra...)
	f.mu.Unlock()
	return out
}

// Stop stops everything in reverse order: Flotilla's processes first, then
// each cluster's components, the apiservers, and etcd last.
func (f *Fleet) Stop() error {
	var errs []error
	if f.HubProcess != nil {
		errs = append(errs, f.HubProcess.Stop(10*time.Second))
	}
	ps := f.Processes()
	for i := len(ps) - 1; i >= 0; i-- {
		errs = append(errs, ps[i].Stop(10*time.Second))
	}
	if f.Git != nil {
		errs = append(errs, f.Git.Close())
	}
	return errors.Join(errs...)
}

// StartExtraAgent starts one more flotilla-agent on a spoke, syncing the
// Applications of namespace (created if missing), with the spoke's admin
// kubeconfig. The benchmarks use it for many clusters per apiserver.
func (f *Fleet) StartExtraAgent(ctx context.Context, spoke, namespace string, args ...string) (*controlplane.Process, error) {
	c := f.Spokes[spoke]
	if c == nil {
		return nil, fmt.Errorf("no spoke %s", spoke)
	}
	if err := c.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: namespace}}); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	probe, err := controlplane.FreePort()
	if err != nil {
		return nil, err
	}
	p := &controlplane.Process{Name: spoke + "/" + namespace + "/flotilla-agent", Path: filepath.Join(f.opts.FlotillaBin, "flotilla-agent"),
		Log: filepath.Join(f.LogDir, spoke+"-"+namespace+"-flotilla-agent.log"),
		Args: append([]string{"--kubeconfig=" + c.Kubeconfig, "--namespace=" + namespace, "--identity=" + spoke + "-" + namespace,
			"--metrics-bind-address=0", fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probe),
			"--git-cache-dir=" + filepath.Join(f.Dir, "clusters", spoke, namespace+"-git-cache"), "--allow-loopback-repositories", "--sync-interval=15s", "--heartbeat-interval=3s", "--lease-duration=" + AgentLeaseDuration.String(), "--health-interval=1s"}, args...)}
	f.mu.Lock()
	f.extra = append(f.extra, p)
	f.mu.Unlock()
	return p, p.Start()
}
