// Command flotilla-hub runs the Flotilla hub controllers.
package main

import (
	"flag"
	"os"
	"path/filepath"
	"runtime/debug"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
	"github.com/flotilla-dev/flotilla/internal/version"
)

func main() {
	var (
		o                       hub.Options
		metricsAddr, probeAddr  string
		pprofAddr               string
		leaderElect             bool
		leaderElectionNamespace string
	)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint ('0' disables it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints ('0': off)")
	flag.BoolVar(&leaderElect, "leader-elect", false, "run with leader election, for more than one replica")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", flotillav1.SystemNamespace, "namespace of the leader election Lease")
	flag.StringVar(&o.Namespace, "namespace", flotillav1.SystemNamespace, "namespace holding kubeconfig and repository Secrets")
	flag.BoolVar(&o.AllowExec, "allow-exec-credentials", false, "let MemberCluster kubeconfigs run exec credential plugins (off: they are refused)")
	flag.StringVar(&o.GitCacheDir, "git-cache-dir", filepath.Join(os.TempDir(), "flotilla-git"), "directory caching Git repositories")
	flag.DurationVar(&o.GitTimeout, "git-timeout", 60e9, "timeout of each Git operation")
	flag.DurationVar(&o.GitPollInterval, "git-poll-interval", 180e9, "how often sets with git generators re-read Git (per-generator requeueAfterSeconds overrides)")
	flag.IntVar(&o.MaxApplications, "max-applications-per-set", 10000, "refuse sets that would produce more Applications")
	flag.DurationVar(&o.ClientLimits.Timeout, "cluster-timeout", kubeconfig.DefaultLimits.Timeout, "timeout of each request to a spoke")
	var qps float64
	flag.Float64Var(&qps, "cluster-qps", float64(kubeconfig.DefaultLimits.QPS), "client QPS limit per spoke")
	flag.IntVar(&o.ClientLimits.Burst, "cluster-burst", kubeconfig.DefaultLimits.Burst, "client burst per spoke")
	flag.DurationVar(&o.ProbeInterval, "probe-interval", 30e9, "interval between probes of a healthy cluster")
	flag.DurationVar(&o.HeartbeatGrace, "heartbeat-grace", 40e9, "age after which an agent heartbeat counts as lost")
	flag.IntVar(&o.DeliveryWorkers, "delivery-workers", 32, "concurrent delivery reconciles")
	flag.IntVar(&o.PerClusterWrites, "per-cluster-writes", 8, "in-flight spoke requests per cluster")
	flag.IntVar(&o.SetWriters, "set-writers", 16, "parallel Application writes per ApplicationSet")
	gcPercent := flag.Int("gc-percent", 50, "Go GC target percentage (GOGC), unless the GOGC environment variable is set: the hub's memory is mostly caches, and 50 instead of Go's 100 keeps its RSS ~20% lower at no measurable CPU cost (BENCHMARKS.md)")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	o.ClientLimits.QPS = float32(qps)
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(*gcPercent)
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("flotilla-hub")
	log.Info("Starting", "version", version.Version)

	scheme, err := hub.Scheme()
	if err != nil {
		log.Error(err, "Build scheme")
		os.Exit(1)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Load kubeconfig: pass --kubeconfig or run in a cluster")
		os.Exit(1)
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                  scheme,
		Cache:                   hub.CacheOptions(o.Namespace),
		Metrics:                 metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:  probeAddr,
		PprofBindAddress:        pprofAddr,
		LeaderElection:          leaderElect,
		LeaderElectionID:        "flotilla-hub",
		LeaderElectionNamespace: leaderElectionNamespace,
	})
	if err != nil {
		log.Error(err, "Create manager")
		os.Exit(1)
	}
	if _, err := hub.Setup(mgr, o); err != nil {
		log.Error(err, "Set up controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		log.Error(err, "Add health check")
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		log.Error(err, "Add ready check")
		os.Exit(1)
	}
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "Manager stopped")
		os.Exit(1)
	}
}
