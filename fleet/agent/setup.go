package agent

import (
	"context"
	"fmt"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
)

// Options configure the agent.
type Options struct {
	// Namespace whose Applications the agent syncs (flotilla-system).
	Namespace   string
	GitCacheDir string
	GitTimeout  time.Duration
	MaxFileSize int64
	// RenderCacheBytes bounds the renders kept between reconciles.
	RenderCacheBytes int64
	GitLimits        git.Limits
	Render           RenderOptions
	SyncInterval     time.Duration
	HealthInterval   time.Duration
	Identity         string
	Version          string
	HeartbeatEvery   time.Duration
	// LeaseDuration is how long the hub waits for a renewal before it
	// counts the agent gone (default 4 × HeartbeatEvery).
	LeaseDuration time.Duration
	// WatchNamespaces limits the applied-object watches to these namespaces
	// (for an agent whose RBAC covers only them); empty means cluster-wide.
	WatchNamespaces []string
	// RenderCommand starts the render sandbox's worker (the agent binary's
	// `render` command); empty renders in process, without budgets.
	// AllowLoopbackRepos lets repoURLs name this machine (local testing).
	AllowLoopbackRepos bool
	RenderCommand      []string
	RenderTimeout      time.Duration
	RenderMemory       int64
	RenderConcurrency  int
	// MaxChartBytes bounds a chart archive fetched from a Helm repository or OCI registry.
	MaxChartBytes int64
	HookTimeout   time.Duration
	// Policy is the spoke's own last word (agent flags), which no hub can change.
	Policy Policy
	// DefaultServiceAccount applies Applications whose Project names no
	// ServiceAccount ("": the agent itself).
	DefaultServiceAccount string
}

// Scheme is the agent's scheme: built-in kinds, CRDs and Flotilla's API.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, flotillav1.AddToScheme} {
		if err := add(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// ManagerOptions limit the agent's caches to its namespace; everything it
// applies is read from the apiserver directly or through its own
// label-filtered cache.
func ManagerOptions(namespace string, scheme *runtime.Scheme) ctrl.Options {
	ns := map[string]cache.Config{namespace: {}}
	return ctrl.Options{
		Scheme: scheme,
		Cache: cache.Options{ByObject: map[client.Object]cache.ByObject{
			&flotillav1.Application{}: {Namespaces: ns},
			&corev1.ConfigMap{}:       {Namespaces: ns},
			&coordinationv1.Lease{}:   {Namespaces: ns},
			// Repository credentials the hub copied here: this namespace only, never another Secret.
			&corev1.Secret{}: {Namespaces: ns, Label: labels.SelectorFromSet(labels.Set{flotillav1.LabelSecretType: git.SecretTypeRepository})},
		}},
		Client: client.Options{Cache: &client.CacheOptions{
			DisableFor:   []client.Object{&apiextensionsv1.CustomResourceDefinition{}, &corev1.Namespace{}},
			Unstructured: false,
		}},
	}
}

// Setup adds the agent's controller and heartbeat to mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.Namespace == "" {
		o.Namespace = flotillav1.SystemNamespace
	}
	var creds git.CredentialSource = git.SecretCredentials{Reader: mgr.GetCache(), Namespace: o.Namespace}
	if !mayReadSecrets(mgr.GetConfig(), o.Namespace) {
		// An agent installed by an older chart: anonymous Git, rather than
		// every fetch waiting on a Secret informer that can never start.
		mgr.GetLogger().Info("this agent may not list and watch Secrets in its namespace: repositories are read without credentials (upgrade the agent chart to use the hub's)", "namespace", o.Namespace)
		creds = nil
	}
	cache, err := git.New(git.Options{Dir: o.GitCacheDir, Timeout: o.GitTimeout, MaxFileSize: o.MaxFileSize, AllowLoopback: o.AllowLoopbackRepos, Limits: o.GitLimits,
		Credentials: creds})
	if err != nil {
		return err
	}
	dc, err := discovery.NewDiscoveryClientForConfig(mgr.GetConfig())
	if err != nil {
		return fmt.Errorf("discovery client: %w", err)
	}
	var renderer Renderer = InProcess{Options: o.Render}
	if len(o.RenderCommand) > 0 {
		renderer = &Sandbox{Command: o.RenderCommand, GitDir: cache.Dir(), MaxFileSize: o.MaxFileSize, AllowLoopback: o.AllowLoopbackRepos, Options: o.Render,
			Timeout: o.RenderTimeout, MemoryBytes: o.RenderMemory, Concurrency: o.RenderConcurrency}
	}
	r := &Reconciler{Client: mgr.GetClient(), Git: cache, Recorder: mgr.GetEventRecorder("flotilla-agent"), Namespace: o.Namespace,
		Renderer: renderer, SyncInterval: o.SyncInterval, HealthInterval: o.HealthInterval, WatchNamespaces: o.WatchNamespaces,
		RenderCacheBytes: o.RenderCacheBytes, HookTimeout: o.HookTimeout, WatchCredentials: creds != nil, Discovery: &Discovery{Client: dc},
		Charts: helmchart.New(helmchart.Options{Credentials: creds, MaxArchiveBytes: o.MaxChartBytes, Timeout: o.GitTimeout, AllowLoopback: o.AllowLoopbackRepos}),
		Policy: o.Policy, DefaultServiceAccount: o.DefaultServiceAccount,
		Impersonation: &Impersonation{Config: mgr.GetConfig(), Options: client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()}, Namespace: o.Namespace}}
	if err := r.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("set up the agent controller: %w", err)
	}
	return mgr.Add(&Heartbeat{Client: mgr.GetClient(), Namespace: o.Namespace, Identity: o.Identity, Version: o.Version, Interval: o.HeartbeatEvery, Duration: o.LeaseDuration})
}

// mayReadSecrets asks the apiserver whether the agent may list and watch
// Secrets in its namespace.
func mayReadSecrets(cfg *rest.Config, namespace string) bool {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return false
	}
	for _, verb := range []string{"list", "watch"} {
		review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
			ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: namespace, Verb: verb, Resource: "secrets"}}}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
		cancel()
		if err != nil || !res.Status.Allowed {
			return false
		}
	}
	return true
}
