// Package hub wires the hub's controllers into a controller-runtime
// manager: ApplicationSet, MemberCluster inventory, delivery, status
// aggregation and (when the CRD exists) Cluster API import.
package hub

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/applicationset"
	"github.com/flotilla-dev/flotilla/fleet/hub/capi"
	"github.com/flotilla-dev/flotilla/fleet/hub/clusters"
	"github.com/flotilla-dev/flotilla/fleet/hub/delivery"
	"github.com/flotilla-dev/flotilla/fleet/hub/repocreds"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/fleet/hub/status"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
	"github.com/flotilla-dev/flotilla/internal/project"
	"github.com/flotilla-dev/flotilla/templates"
)

// Options configure the hub.
type Options struct {
	// Namespace holds kubeconfig and repository Secrets (flotilla-system).
	Namespace       string
	AllowExec       bool
	GitCacheDir     string
	GitTimeout      time.Duration
	GitLimits       git.Limits
	GitPollInterval time.Duration
	MaxApplications int
	// ExpansionBudget bounds each set's template expansion.
	ExpansionBudget  templates.Budget
	ClientLimits     kubeconfig.Limits
	ProbeInterval    time.Duration
	HeartbeatGrace   time.Duration
	DeliveryWorkers  int
	PerClusterWrites int
	// SetWriters bounds each ApplicationSet's parallel Application writes.
	SetWriters int
	// SpokeSyncTimeout bounds the wait for a spoke's cache to sync before
	// the cluster is reported not Ready (default 30s).
	SpokeSyncTimeout time.Duration
	// AllowLoopbackRepos lets repoURLs name this machine (local testing).
	AllowLoopbackRepos bool
	// CAPIImport turns Cluster API import on (chart value capi.enabled,
	// which also grants its RBAC); off by default.
	CAPIImport bool
	// CAPICopyLabels are the Cluster API Cluster label keys (globs) copied
	// to imported MemberClusters; none by default.
	CAPICopyLabels []string
	// CAPIAgentImage is the agent image installed on imported clusters.
	CAPIAgentImage string
	// ApplicationSetNamespaces are globs of the namespaces whose
	// ApplicationSets the hub reconciles (empty: every namespace; the
	// flotilla-hub flag defaults to the hub's own namespace).
	ApplicationSetNamespaces []string
}

// CacheOptions limits the manager's Secret and Project caches to the
// system namespace: the hub never reads Secrets or Projects elsewhere.
func CacheOptions(namespace string) cache.Options {
	return cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Secret{}: {Namespaces: map[string]cache.Config{namespace: {}}},
		// Projects count only in the hub's namespace: a tenant who may write
		// elsewhere cannot grant itself one.
		&flotillav1.Project{}: {Namespaces: map[string]cache.Config{namespace: {}}},
	}, DefaultTransform: kube.SlimCache}
}

// Scheme returns the hub's scheme.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := flotillav1.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := clusterv1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// Setup adds every hub controller to mgr and returns the cluster pool.
func Setup(mgr ctrl.Manager, o Options) (*Hub, error) {
	if o.Namespace == "" {
		o.Namespace = flotillav1.SystemNamespace
	}
	if err := status.IndexByCluster(mgr); err != nil {
		return nil, fmt.Errorf("index Applications by cluster: %w", err)
	}
	pool := spokes.NewPool(mgr.GetScheme(), mgr.GetLogger().WithName("pool"))
	pool.SyncTimeout = o.SpokeSyncTimeout
	if err := mgr.Add(pool); err != nil {
		return nil, err
	}
	cache, err := git.New(git.Options{Dir: o.GitCacheDir, Timeout: o.GitTimeout, AllowLoopback: o.AllowLoopbackRepos, Limits: o.GitLimits,
		Credentials: git.SecretCredentials{Reader: mgr.GetClient(), Namespace: o.Namespace}})
	if err != nil {
		return nil, err
	}
	engine := generators.New(generators.Options{
		Clusters:  generators.HubClusters{Reader: mgr.GetClient()},
		Git:       generators.GitCache{Cache: cache},
		MaxParams: o.MaxApplications,
		Budget:    o.ExpansionBudget,
	})
	projects := project.Reader(mgr.GetClient(), o.Namespace)
	if err := mgr.Add(&defaultProject{client: mgr.GetClient(), namespace: o.Namespace, log: mgr.GetLogger()}); err != nil {
		return nil, err
	}
	h := &Hub{
		Pool: pool,
		sets: &applicationset.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Scheme: mgr.GetScheme(), Engine: engine,
			Recorder: mgr.GetEventRecorder("flotilla-hub"), GitPollInterval: o.GitPollInterval, Writers: o.SetWriters,
			Revisions: &applicationset.Revisions{Git: cache, TTL: pollOrDefault(o.GitPollInterval)}, Projects: projects, Namespaces: o.ApplicationSetNamespaces},
		clusters: &clusters.Reconciler{Client: mgr.GetClient(), Pool: pool, Namespace: o.Namespace, AllowExec: o.AllowExec,
			Limits: o.ClientLimits, ProbeInterval: o.ProbeInterval, HeartbeatGrace: o.HeartbeatGrace,
			Recorder: mgr.GetEventRecorder("flotilla-hub")},
		delivery: &delivery.Reconciler{Client: mgr.GetClient(), Pool: pool, Recorder: mgr.GetEventRecorder("flotilla-hub"),
			Workers: o.DeliveryWorkers, PerCluster: o.PerClusterWrites, Projects: projects},
		setStatus:     &status.SetReconciler{Client: mgr.GetClient(), Namespaces: o.ApplicationSetNamespaces},
		clusterStatus: &status.ClusterReconciler{Client: mgr.GetClient()},
	}
	creds := &repocreds.Reconciler{Client: mgr.GetClient(), Pool: pool, Namespace: o.Namespace, Recorder: mgr.GetEventRecorder("flotilla-hub")}
	setups := []interface{ SetupWithManager(ctrl.Manager) error }{h.sets, h.clusters, h.delivery, h.setStatus, h.clusterStatus, creds}
	switch {
	case !o.CAPIImport:
		mgr.GetLogger().Info("Cluster API import is off (--cluster-api-import, chart value capi.enabled)")
	case capi.Available(mgr.GetRESTMapper()):
		setups = append(setups, &capi.Reconciler{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Namespace: o.Namespace,
			Recorder: mgr.GetEventRecorder("flotilla-hub"), CopyLabels: o.CAPICopyLabels, AgentImage: o.CAPIAgentImage})
	default:
		mgr.GetLogger().Info("Cluster API import is on but clusters.cluster.x-k8s.io is not served by this hub: nothing to import")
	}
	for _, s := range setups {
		if err := s.SetupWithManager(mgr); err != nil {
			return nil, fmt.Errorf("set up %T: %w", s, err)
		}
	}
	return h, nil
}

// Hub is a set-up hub: its spoke pool and its controllers.
type Hub struct {
	Pool          *spokes.Pool
	sets          *applicationset.Reconciler
	clusters      *clusters.Reconciler
	delivery      *delivery.Reconciler
	setStatus     *status.SetReconciler
	clusterStatus *status.ClusterReconciler
}

// Tracked counts the entries the hub keeps in memory per set, Application
// and cluster: it must come back down when they are deleted (tests).
func (h *Hub) Tracked() map[string]int {
	apps, sems := h.delivery.Tracked()
	return map[string]int{
		"applicationset": h.sets.Tracked(), "clusters": h.clusters.Tracked(), "pool": len(h.Pool.Names()),
		"delivery.written": apps, "delivery.semaphores": sems,
		"applicationset-status": h.setStatus.Tracked(), "membercluster-status": h.clusterStatus.Tracked(),
	}
}

func pollOrDefault(d time.Duration) time.Duration {
	if d <= 0 {
		return applicationset.DefaultGitPollInterval
	}
	return d
}

// defaultProject creates the default Project at start when it is missing
// (Argo CD does the same): Applications without spec.project keep
// working. An existing one is never changed: a platform team may narrow it.
type defaultProject struct {
	client    client.Client
	namespace string
	log       logr.Logger
}

func (d *defaultProject) Start(ctx context.Context) error {
	p := project.Default(d.namespace)
	for {
		err := d.client.Create(ctx, p)
		if err == nil {
			d.log.Info("Created the default Project", "namespace", d.namespace)
		}
		if err == nil || apierrors.IsAlreadyExists(err) {
			return nil
		}
		d.log.Error(err, "Create the default Project; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(5 * time.Second):
		}
	}
}

// NeedLeaderElection: only the leader writes.
func (d *defaultProject) NeedLeaderElection() bool { return true }
