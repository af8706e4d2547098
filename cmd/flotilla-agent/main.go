// Command flotilla-agent syncs the Applications delivered to one spoke.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/project"
	"github.com/flotilla-dev/flotilla/internal/version"
)

// flags are the agent's command line.
type flags struct {
	agent.Options
	metricsAddr, probeAddr, pprofAddr string
	leaderElect                       bool
	renderInProcess                   bool
	zap                               zap.Options
}

func parseFlags() *flags {
	f := &flags{}
	o := &f.Options
	flag.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", flotillav1.SystemNamespace), "namespace whose Applications this agent syncs")
	flag.StringVar(&o.Identity, "identity", envOr("POD_NAME", "flotilla-agent"), "holder identity written to the heartbeat Lease")
	flag.StringVar(&o.GitCacheDir, "git-cache-dir", filepath.Join(os.TempDir(), "flotilla-agent-git"), "directory caching Git repositories")
	flag.DurationVar(&o.GitTimeout, "git-timeout", git.DefaultTimeout, "timeout of each Git operation")
	flag.Int64Var(&o.MaxFileSize, "max-file-bytes", git.DefaultMaxFileSize, "largest file read from a repository")
	o.GitLimits.BindFlags(flag.CommandLine)
	flag.Int64Var(&o.RenderCacheBytes, "render-cache-bytes", agent.DefaultRenderCacheBytes, "bytes of renders (as JSON) kept between reconciles; least recently used dropped first (they render again when next needed)")
	flag.Int64Var(&o.Render.MaxTotalSize, "max-render-bytes", agent.DefaultMaxTotalSize, "most bytes loaded from one repository for a render")
	flag.IntVar(&o.Render.MaxObjects, "max-objects", agent.DefaultMaxObjects, "most objects one Application may render")
	flag.Int64Var(&o.MaxChartBytes, "max-chart-bytes", helmchart.DefaultMaxArchiveBytes, "largest Helm chart archive (or index.yaml) fetched from a Helm repository or OCI registry")
	flag.DurationVar(&o.HookTimeout, "hook-timeout", agent.DefaultHookTimeout, "how long one group of Helm hooks (a Job) may take before the sync fails")
	flag.BoolVar(&o.AllowLoopbackRepos, "allow-loopback-repositories", false, "let repoURLs name this machine (127.0.0.1, localhost): for local testing; link-local and metadata addresses are always refused")
	flag.BoolVar(&o.Render.AllowRemoteBases, "allow-remote-bases", false, "let kustomizations reference remote bases (off: refused)")
	flag.DurationVar(&o.SyncInterval, "sync-interval", 3*time.Minute, "how often to re-check Git for new commits")
	flag.DurationVar(&o.HealthInterval, "health-interval", 5*time.Second, "re-check interval while something is Progressing")
	flag.DurationVar(&o.HeartbeatEvery, "heartbeat-interval", 10*time.Second, "how often to renew the heartbeat Lease")
	flag.DurationVar(&o.LeaseDuration, "lease-duration", 40*time.Second, "the heartbeat Lease's duration: the hub reports this agent's Applications Unknown once it passes without a renewal (more than heartbeat-interval; default 40s)")
	flag.Func("watch-namespaces", "comma-separated namespaces the agent may deploy to (its RBAC scope); empty means the whole cluster", kube.CommaList(&o.WatchNamespaces))
	flag.BoolVar(&f.renderInProcess, "render-in-process", false, "render in the agent's own process, without the sandbox's memory and time budgets or its network block (for debugging)")
	flag.DurationVar(&o.RenderTimeout, "render-timeout", agent.DefaultRenderTimeout, "time budget of one render; a render over it fails its Application")
	o.RenderMemory = agent.DefaultRenderMemory
	flag.Func("render-memory", "resident memory budget of one render, e.g. 160Mi; a render over it fails its Application (default 160Mi)", func(v string) error {
		q, err := resource.ParseQuantity(v)
		o.RenderMemory = q.Value()
		return err
	})
	flag.IntVar(&o.RenderConcurrency, "render-concurrency", agent.DefaultRenderConcurrency, "renders at once: keep render-concurrency × render-memory plus ~100Mi under the agent's memory limit")
	flag.StringVar(&o.DefaultServiceAccount, "default-service-account", "", "ServiceAccount (in --namespace) the agent impersonates to apply Applications whose Project names none; empty: the agent applies them itself")
	flag.Func("allowed-namespaces", "spoke policy: comma-separated globs of the namespaces objects may land in (empty: any); the hub cannot change it", kube.CommaList(&o.Policy.AllowedNamespaces))
	flag.Func("denied-kinds", "spoke policy: comma-separated group/Kind (or Kind, core group) never applied, e.g. rbac.authorization.k8s.io/ClusterRoleBinding", func(v string) error {
		kinds, err := project.ParseKinds(strings.Split(v, ","))
		o.Policy.DeniedKinds = kinds
		return err
	})
	flag.BoolVar(&o.Policy.RequireProjectRules, "require-project-rules", true, "spoke policy: refuse Applications that carry no Project rules (not delivered by a hub that checked them)")
	flag.BoolVar(&o.Policy.DenyClusterScoped, "deny-cluster-scoped", false, "spoke policy: refuse every cluster-scoped object")
	flag.BoolVar(&o.Policy.ProtectAgentNamespace, "protect-agent-namespace", true, "spoke policy: refuse objects in the agent's own namespace")
	flag.BoolVar(&o.Policy.DenyClusterAdminBindings, "deny-cluster-admin-bindings", true, "spoke policy: refuse RoleBindings and ClusterRoleBindings to the ClusterRole cluster-admin")
	flag.BoolVar(&f.leaderElect, "leader-elect", false, "run with leader election, for more than one replica (one applies, the others stand by)")
	flag.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint ('0' disables it)")
	flag.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&f.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints ('0': off)")
	f.zap.BindFlags(flag.CommandLine)
	flag.Parse()
	o.Version = version.Version
	if !f.renderInProcess {
		if exe, err := os.Executable(); err == nil {
			o.RenderCommand = []string{exe, renderCommand}
		}
	}
	return f
}

// renderCommand runs the render sandbox's worker (see agent.Sandbox).
const renderCommand = "render"

func main() {
	if len(os.Args) == 2 && os.Args[1] == renderCommand {
		if err := agent.RenderWorker(os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		return
	}
	f := parseFlags()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	log := ctrl.Log.WithName("flotilla-agent")
	log.Info("Starting", "version", version.Version, "namespace", f.Namespace)
	if f.Render.AllowRemoteBases {
		log.Info("Remote kustomize bases are allowed; they are fetched by kustomize, outside the repository's sandbox")
	}
	if err := run(f); err != nil {
		log.Error(err, "Stopped")
		os.Exit(1)
	}
}

func run(f *flags) error {
	scheme, err := agent.Scheme()
	if err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig (pass --kubeconfig or run in a cluster): %w", err)
	}
	opts := agent.ManagerOptions(f.Namespace, scheme)
	opts.Metrics = metricsserver.Options{BindAddress: f.metricsAddr}
	opts.HealthProbeBindAddress = f.probeAddr
	opts.PprofBindAddress = f.pprofAddr
	opts.LeaderElection = f.leaderElect
	opts.LeaderElectionID = "flotilla-agent-leader"
	opts.LeaderElectionNamespace = f.Namespace
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if err := agent.Setup(mgr, f.Options); err != nil {
		return fmt.Errorf("set up the agent: %w", err)
	}
	return kube.RunManager(ctrl.SetupSignalHandler(), mgr)
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
