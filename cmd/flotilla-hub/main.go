// Command flotilla-hub runs the Flotilla hub controllers.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/dashboard"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/webhook"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
	"github.com/flotilla-dev/flotilla/internal/version"
	"github.com/flotilla-dev/flotilla/templates"
)

// flags are the hub's command line.
type flags struct {
	hub.Options
	metricsAddr, probeAddr, pprofAddr string
	leaderElect                       bool
	leaderElectionNamespace           string
	gcPercent                         int
	zap                               zap.Options
	dashboardAddr, webhookAddr        string
	dashboardSecureCookies            bool
}

func parseFlags() *flags {
	f := &flags{}
	o := &f.Options
	flag.StringVar(&f.metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint ('0' disables it)")
	flag.StringVar(&f.probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&f.pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints ('0': off)")
	flag.BoolVar(&f.leaderElect, "leader-elect", false, "run with leader election, for more than one replica")
	flag.StringVar(&f.leaderElectionNamespace, "leader-election-namespace", flotillav1.SystemNamespace, "namespace of the leader election Lease")
	flag.StringVar(&o.Namespace, "namespace", flotillav1.SystemNamespace, "namespace holding kubeconfig and repository Secrets")
	flag.BoolVar(&o.AllowLoopbackRepos, "allow-loopback-repositories", false, "let repoURLs name this machine (127.0.0.1, localhost): for local testing; link-local and metadata addresses are always refused")
	flag.BoolVar(&o.CAPIImport, "cluster-api-import", false, "import Cluster API Clusters as MemberClusters (needs the chart's capi.enabled RBAC): the agent is installed with the Cluster's kubeconfig, and the hub keeps only a least-privilege token")
	flag.StringVar(&o.CAPIAgentImage, "capi-agent-image", "", "agent image installed on imported clusters (repository[:tag]; default: the agent chart's)")
	flag.Func("capi-copy-labels", "comma-separated Cluster API Cluster label keys (globs, e.g. env,region,fleet.example.com/*) copied to imported MemberClusters; none by default, since whoever creates a Cluster would otherwise choose which sets deploy there", kube.CommaList(&o.CAPICopyLabels))
	o.ApplicationSetNamespaces = nil
	flag.Func("application-set-namespaces", "comma-separated globs of the namespaces whose ApplicationSets the hub reconciles (default: the hub's own --namespace; '*': every namespace); sets elsewhere are ignored. Each Project's sourceNamespaces still decides which of them may use it", kube.CommaList(&o.ApplicationSetNamespaces))
	flag.BoolVar(&o.AllowExec, "allow-exec-credentials", false, "let MemberCluster kubeconfigs run exec credential plugins (off: they are refused)")
	flag.StringVar(&o.GitCacheDir, "git-cache-dir", filepath.Join(os.TempDir(), "flotilla-git"), "directory caching Git repositories")
	flag.DurationVar(&o.GitTimeout, "git-timeout", 60e9, "timeout of each Git operation")
	o.GitLimits.BindFlags(flag.CommandLine)
	flag.DurationVar(&o.GitPollInterval, "git-poll-interval", 180e9, "how often sets with git generators re-read Git (per-generator requeueAfterSeconds overrides)")
	flag.IntVar(&o.MaxApplications, "max-applications-per-set", 10000, "refuse sets that would produce more Applications")
	flag.DurationVar(&o.ExpansionBudget.Time, "max-expansion-time", templates.DefaultExpansionTime, "time budget of one set's template expansion; a set over it fails with a condition")
	flag.Int64Var(&o.ExpansionBudget.Bytes, "max-expansion-bytes", templates.DefaultExpansionBytes, "most bytes one set's rendered Applications may take")
	flag.DurationVar(&o.ClientLimits.Timeout, "cluster-timeout", kubeconfig.DefaultLimits.Timeout, "timeout of each request to a spoke")
	flag.Func("cluster-qps", fmt.Sprintf("client QPS limit per spoke (default %v)", kubeconfig.DefaultLimits.QPS), func(v string) error {
		qps, err := strconv.ParseFloat(v, 32)
		o.ClientLimits.QPS = float32(qps)
		return err
	})
	o.ClientLimits.QPS = kubeconfig.DefaultLimits.QPS
	flag.IntVar(&o.ClientLimits.Burst, "cluster-burst", kubeconfig.DefaultLimits.Burst, "client burst per spoke")
	flag.DurationVar(&o.ProbeInterval, "probe-interval", 30e9, "interval between probes of a healthy cluster")
	flag.DurationVar(&o.HeartbeatGrace, "heartbeat-grace", 40e9, "age after which an agent heartbeat counts as lost, for agents whose Lease does not say its duration")
	flag.DurationVar(&o.SpokeSyncTimeout, "spoke-sync-timeout", 30e9, "how long a new spoke connection's cache may take to sync before the cluster is reported not Ready")
	flag.IntVar(&o.DeliveryWorkers, "delivery-workers", 32, "concurrent delivery reconciles")
	flag.IntVar(&o.PerClusterWrites, "per-cluster-writes", 8, "in-flight spoke requests per cluster")
	flag.IntVar(&o.SetWriters, "set-writers", 16, "parallel Application writes per ApplicationSet")
	flag.StringVar(&f.dashboardAddr, "dashboard-bind-address", "0", "address of the fleet dashboard ('0': off); every request needs a Kubernetes bearer token, read with that token's rights")
	flag.StringVar(&f.webhookAddr, "webhook-bind-address", "0", "address of the Git webhook endpoint "+webhook.Path+" ('0': off); push events from GitHub, GitLab, Gitea/Forgejo and Bitbucket, verified against the Secret "+webhook.SecretName+", make the sets using the repository re-read Git at once")
	flag.BoolVar(&f.dashboardSecureCookies, "dashboard-secure-cookies", true, "mark the dashboard's session cookie Secure (serve it behind TLS)")
	flag.IntVar(&f.gcPercent, "gc-percent", 50, "Go GC target percentage (GOGC), unless the GOGC environment variable is set: the hub's memory is mostly caches, and 50 instead of Go's 100 keeps its RSS ~20% lower at no measurable CPU cost (BENCHMARKS.md)")
	f.zap.BindFlags(flag.CommandLine)
	flag.Parse()
	if o.ApplicationSetNamespaces == nil {
		o.ApplicationSetNamespaces = []string{o.Namespace}
	}
	return f
}

func main() {
	f := parseFlags()
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(f.gcPercent)
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.zap)))
	log := ctrl.Log.WithName("flotilla-hub")
	log.Info("Starting", "version", version.Version)
	if err := run(f); err != nil {
		log.Error(err, "Stopped")
		os.Exit(1)
	}
}

func run(f *flags) error {
	scheme, err := hub.Scheme()
	if err != nil {
		return fmt.Errorf("build scheme: %w", err)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return fmt.Errorf("load kubeconfig (pass --kubeconfig or run in a cluster): %w", err)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   hub.CacheOptions(f.Namespace),
		Metrics:                 metricsserver.Options{BindAddress: f.metricsAddr},
		HealthProbeBindAddress:  f.probeAddr,
		PprofBindAddress:        f.pprofAddr,
		LeaderElection:          f.leaderElect,
		LeaderElectionID:        "flotilla-hub",
		LeaderElectionNamespace: f.leaderElectionNamespace,
	})
	if err != nil {
		return fmt.Errorf("create manager: %w", err)
	}
	if _, err := hub.Setup(mgr, f.Options); err != nil {
		return fmt.Errorf("set up controllers: %w", err)
	}
	if f.webhookAddr != "0" && f.webhookAddr != "" {
		ln, err := net.Listen("tcp", f.webhookAddr)
		if err != nil {
			return fmt.Errorf("webhook: listen on %s: %w", f.webhookAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle(webhook.Path, &webhook.Handler{Client: mgr.GetClient(), Namespace: f.Namespace, Log: ctrl.Log.WithName("webhook")})
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		if err := mgr.Add(noLeader(func(ctx context.Context) error {
			go func() {
				<-ctx.Done()
				shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(shut)
			}()
			if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		})); err != nil {
			return err
		}
	}
	if f.dashboardAddr != "0" && f.dashboardAddr != "" {
		srv, err := dashboard.New(dashboard.Options{Hub: cfg, Scheme: scheme, SecureCookies: f.dashboardSecureCookies})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", f.dashboardAddr)
		if err != nil {
			return fmt.Errorf("dashboard: listen on %s: %w", f.dashboardAddr, err)
		}
		// Every replica serves it, leader or not: it only reads.
		if err := mgr.Add(noLeader(func(ctx context.Context) error { return srv.Serve(ctx, ln) })); err != nil {
			return err
		}
	}
	return kube.RunManager(ctrl.SetupSignalHandler(), mgr)
}

// noLeader is a manager runnable that runs on every replica.
type noLeader func(ctx context.Context) error

func (n noLeader) Start(ctx context.Context) error { return n(ctx) }

func (noLeader) NeedLeaderElection() bool { return false }
