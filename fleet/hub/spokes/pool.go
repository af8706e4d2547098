package spokes

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/cluster"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Cluster is one pooled spoke connection: a cache limited to the agent
// namespace (the hub's spoke identity may read nothing else) and a client
// that reads from it and writes directly.
type Cluster struct {
	Name           string
	AgentNamespace string
	Config         *rest.Config
	Cluster        cluster.Cluster
	hash           string
	cancel         context.CancelFunc
	done           chan struct{}

	mu        sync.Mutex
	healthy   bool
	lastError string
	syncError string // the cache of spoke Applications has not synced: why
}

// SyncError says why the spoke's Application cache has not synced within
// the pool's timeout (RBAC, a wrong agent namespace); empty once it has.
func (c *Cluster) SyncError() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.syncError
}

// Done is closed once the Cluster's cache (and every watch on it) stopped.
func (c *Cluster) Done() <-chan struct{} { return c.done }

// Client reads from the spoke cache and writes to the spoke.
func (c *Cluster) Client() client.Client { return c.Cluster.GetClient() }

// SetHealth records the last probe's result.
func (c *Cluster) SetHealth(ok bool, msg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.healthy, c.lastError = ok, msg
}

// Health returns the last probe's result; a cache that has not synced is
// not healthy either.
func (c *Cluster) Health() (bool, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.healthy && c.syncError != "" {
		return false, c.syncError
	}
	return c.healthy, c.lastError
}

// waitSynced waits for the spoke Application cache; past timeout it records
// why (and keeps waiting: a fixed Role clears it), until ctx ends.
func (c *Cluster) waitSynced(ctx context.Context, timeout time.Duration) {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := c.Cluster.GetCache().GetInformer(tctx, &flotillav1.Application{}, cache.BlockUntilSynced(true))
	if err == nil || ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.syncError = fmt.Sprintf("the hub's cache of Applications in %s on the spoke did not sync within %s: check that the hub's identity may list and watch Applications there (flotilla cluster register grants it)", c.AgentNamespace, timeout)
	c.mu.Unlock()
	if c.Cluster.GetCache().WaitForCacheSync(ctx) {
		c.mu.Lock()
		c.syncError = ""
		c.mu.Unlock()
	}
}

// Pool keeps one Cluster per MemberCluster. It is a manager Runnable: the
// caches it starts live as long as the manager.
type Pool struct {
	scheme *runtime.Scheme
	log    logr.Logger
	// SyncTimeout bounds the wait for a new spoke cache to sync before the
	// cluster is reported not Ready (default 30s).
	SyncTimeout time.Duration

	mu       sync.RWMutex
	ctx      context.Context
	clusters map[string]*Cluster
	onAdd    []func(*Cluster)
}

// NewPool makes an empty pool.
func NewPool(scheme *runtime.Scheme, log logr.Logger) *Pool {
	return &Pool{scheme: scheme, log: log, clusters: map[string]*Cluster{}}
}

// Start implements manager.Runnable; it stops every cache when ctx ends.
func (p *Pool) Start(ctx context.Context) error {
	p.mu.Lock()
	p.ctx = ctx
	p.mu.Unlock()
	<-ctx.Done()
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, c := range p.clusters {
		c.cancel()
		delete(p.clusters, name)
	}
	return nil
}

// NeedLeaderElection: only the leader talks to spokes.
func (p *Pool) NeedLeaderElection() bool { return true }

// OnAdd registers a callback for every new or replaced Cluster (used to
// watch spoke Applications through its cache: handlers added to its
// informers stop with it).
func (p *Pool) OnAdd(fn func(*Cluster)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.onAdd = append(p.onAdd, fn)
}

// Get returns the pooled Cluster.
func (p *Pool) Get(name string) (*Cluster, bool) {
	p.mu.RLock()
	defer p.mu.RUnlock()
	c, ok := p.clusters[name]
	return c, ok
}

// Upsert (re)builds the Cluster when its credentials or agent namespace
// changed, and starts its cache. It does not wait for the cache to sync.
func (p *Pool) Upsert(name, agentNamespace string, cfg *rest.Config, hash string) (*Cluster, error) {
	p.mu.Lock()
	if p.ctx == nil {
		p.mu.Unlock()
		return nil, errors.New("the cluster pool is not started")
	}
	if old, ok := p.clusters[name]; ok && old.hash == hash && old.AgentNamespace == agentNamespace {
		p.mu.Unlock()
		return old, nil
	}
	parent := p.ctx
	p.mu.Unlock()

	cl, err := cluster.New(cfg, func(o *cluster.Options) {
		o.Scheme = p.scheme
		o.Cache = cache.Options{
			DefaultNamespaces: map[string]cache.Config{agentNamespace: {}},
			ByObject:          map[client.Object]cache.ByObject{},
			DefaultTransform:  slimSpokeCopy,
		}
		o.MapperProvider = spokeMapper
		o.Logger = p.log.WithValues("cluster", name)
	})
	if err != nil {
		return nil, fmt.Errorf("build client for cluster %s: %w", name, err)
	}
	ctx, cancel := context.WithCancel(parent)
	c := &Cluster{Name: name, AgentNamespace: agentNamespace, Config: cfg, Cluster: cl, hash: hash, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(c.done)
		if err := cl.Start(ctx); err != nil && ctx.Err() == nil {
			p.log.Error(err, "Spoke cache stopped", "cluster", name)
		}
	}()
	timeout := p.SyncTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	go c.waitSynced(ctx, timeout)

	p.mu.Lock()
	if old, ok := p.clusters[name]; ok {
		old.cancel()
	}
	p.clusters[name] = c
	callbacks := append([]func(*Cluster){}, p.onAdd...)
	p.mu.Unlock()
	for _, fn := range callbacks {
		fn(c)
	}
	return c, nil
}

// Remove stops and forgets a Cluster (its watches stop with its cache).
func (p *Pool) Remove(name string) {
	p.mu.Lock()
	c, ok := p.clusters[name]
	delete(p.clusters, name)
	p.mu.Unlock()
	if ok {
		c.cancel()
		select {
		case <-c.done:
		case <-time.After(10 * time.Second):
		}
	}
}

// Names lists pooled clusters.
func (p *Pool) Names() []string {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]string, 0, len(p.clusters))
	for n := range p.clusters {
		out = append(out, n)
	}
	return out
}

// spokeMapper maps the kinds the hub reads and writes on spokes
// (Applications, and the repository credential Secrets it copies). The
// default mapper discovers every API group of every spoke: ~150 KiB of
// heap per cluster, and a discovery round trip per new connection, for
// kinds the hub never touches.
func spokeMapper(*rest.Config, *http.Client) (meta.RESTMapper, error) {
	m := meta.NewDefaultRESTMapper([]schema.GroupVersion{flotillav1.GroupVersion, corev1.SchemeGroupVersion})
	m.Add(flotillav1.GroupVersion.WithKind("Application"), meta.RESTScopeNamespace)
	m.Add(corev1.SchemeGroupVersion.WithKind("Secret"), meta.RESTScopeNamespace)
	return m, nil
}

// slimSpokeCopy is the spoke caches' transform: the hub compares a spoke
// copy's spec, labels and annotations and mirrors its status; it never
// reads the copy's managedFields, owner references or finalizers, so
// they are not kept, and repeated strings are shared (kube.SlimCache).
func slimSpokeCopy(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
		o.SetOwnerReferences(nil)
		o.SetFinalizers(nil)
	}
	return kube.SlimCache(obj)
}
