// Command flotilla-agent syncs the Applications delivered to one spoke.
package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/version"
)

func main() {
	var (
		o                      agent.Options
		metricsAddr, probeAddr string
		leaderElect            bool
		pprofAddr              string
	)
	flag.StringVar(&o.Namespace, "namespace", envOr("POD_NAMESPACE", flotillav1.SystemNamespace), "namespace whose Applications this agent syncs")
	flag.StringVar(&o.Identity, "identity", envOr("POD_NAME", "flotilla-agent"), "holder identity written to the heartbeat Lease")
	flag.StringVar(&o.GitCacheDir, "git-cache-dir", filepath.Join(os.TempDir(), "flotilla-agent-git"), "directory caching Git repositories")
	flag.DurationVar(&o.GitTimeout, "git-timeout", git.DefaultTimeout, "timeout of each Git operation")
	flag.Int64Var(&o.MaxFileSize, "max-file-bytes", git.DefaultMaxFileSize, "largest file read from a repository")
	flag.Int64Var(&o.Render.MaxTotalSize, "max-render-bytes", agent.DefaultMaxTotalSize, "most bytes loaded from one repository for a render")
	flag.IntVar(&o.Render.MaxObjects, "max-objects", agent.DefaultMaxObjects, "most objects one Application may render")
	flag.BoolVar(&o.Render.AllowRemoteBases, "allow-remote-bases", false, "let kustomizations reference remote bases (off: refused)")
	flag.DurationVar(&o.SyncInterval, "sync-interval", 3*time.Minute, "how often to re-check Git for new commits")
	flag.DurationVar(&o.HealthInterval, "health-interval", 5*time.Second, "re-check interval while something is Progressing")
	flag.DurationVar(&o.HeartbeatEvery, "heartbeat-interval", 10*time.Second, "how often to renew the heartbeat Lease")
	var watchNamespaces string
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces the agent may deploy to (its RBAC scope); empty means the whole cluster")
	flag.BoolVar(&leaderElect, "leader-elect", false, "run with leader election, for more than one replica (one applies, the others stand by)")
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of the Prometheus metrics endpoint ('0' disables it)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.StringVar(&pprofAddr, "pprof-bind-address", "0", "address of Go's /debug/pprof endpoints ('0': off)")
	zopts := zap.Options{}
	zopts.BindFlags(flag.CommandLine)
	flag.Parse()
	o.Version = version.Version
	for _, ns := range strings.Split(watchNamespaces, ",") {
		if ns = strings.TrimSpace(ns); ns != "" {
			o.WatchNamespaces = append(o.WatchNamespaces, ns)
		}
	}

	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zopts)))
	log := ctrl.Log.WithName("flotilla-agent")
	log.Info("Starting", "version", version.Version, "namespace", o.Namespace)
	if o.Render.AllowRemoteBases {
		log.Info("Remote kustomize bases are allowed; they are fetched by kustomize, outside the repository's sandbox")
	}

	scheme, err := agent.Scheme()
	if err != nil {
		log.Error(err, "Build scheme")
		os.Exit(1)
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		log.Error(err, "Load kubeconfig: pass --kubeconfig or run in a cluster")
		os.Exit(1)
	}
	opts := agent.ManagerOptions(o.Namespace, scheme)
	opts.Metrics = metricsserver.Options{BindAddress: metricsAddr}
	opts.HealthProbeBindAddress = probeAddr
	opts.PprofBindAddress = pprofAddr
	opts.LeaderElection = leaderElect
	opts.LeaderElectionID = "flotilla-agent-leader"
	opts.LeaderElectionNamespace = o.Namespace
	mgr, err := ctrl.NewManager(cfg, opts)
	if err != nil {
		log.Error(err, "Create manager")
		os.Exit(1)
	}
	if err := agent.Setup(mgr, o); err != nil {
		log.Error(err, "Set up the agent")
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

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
