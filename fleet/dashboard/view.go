// Package dashboard is Flotilla's fleet dashboard: server-rendered HTML
// (html/template, one script and one stylesheet, all embedded) over a
// watch-backed cache of the ApplicationSets, Applications and
// MemberClusters that one identity may read. Locally (`flotilla dashboard`)
// the identity is the kubeconfig's user; on the hub every request carries
// the user's bearer token, checked with TokenReview and read with a client
// of that token, so a page never shows more than the user's RBAC allows.
package dashboard

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// ErrNoAccess means the identity may read no ApplicationSet anywhere.
var ErrNoAccess = errors.New("you may not read Flotilla's ApplicationSets in any namespace")

// view is what one identity may read, cached and kept current by watches.
type view struct {
	reader   client.Reader // the cache
	direct   client.Client // the identity's own client, for Events
	clusters bool          // may list MemberClusters
	scope    []string      // namespaces read; nil means all
	version  atomic.Int64  // bumped by every change the watches see
	lastUsed atomic.Int64  // unix seconds
	cancel   context.CancelFunc
}

// newView starts a cache of what cfg's identity may read: all namespaces
// if it may list and watch sets cluster-wide, else the namespaces (from
// namespaces, listed by the server's own identity) where it may.
func newView(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme, namespaces func(context.Context) ([]string, error)) (*view, error) {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	may := func(ns, resource string, group string) (bool, error) {
		for _, verb := range []string{"list", "watch"} {
			r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: group, Resource: resource}}}, metav1.CreateOptions{})
			if err != nil {
				return false, fmt.Errorf("ask the apiserver what you may read: %s", kube.FirstLine(err))
			}
			if !r.Status.Allowed {
				return false, nil
			}
		}
		return true, nil
	}
	v := &view{}
	all, err := may("", "applicationsets", flotillav1.GroupVersion.Group)
	if err != nil {
		return nil, err
	}
	if !all {
		if namespaces == nil {
			return nil, ErrNoAccess
		}
		names, err := namespaces(ctx)
		if err != nil {
			return nil, err
		}
		v.scope = []string{}
		for _, ns := range names {
			sets, err := may(ns, "applicationsets", flotillav1.GroupVersion.Group)
			if err != nil {
				return nil, err
			}
			apps, err := may(ns, "applications", flotillav1.GroupVersion.Group)
			if err != nil {
				return nil, err
			}
			if sets && apps {
				v.scope = append(v.scope, ns)
			}
		}
		if len(v.scope) == 0 {
			return nil, ErrNoAccess
		}
	}
	if v.clusters, err = may("", "memberclusters", flotillav1.GroupVersion.Group); err != nil {
		return nil, err
	}
	opts := cache.Options{Scheme: scheme, DefaultTransform: kube.SlimCache, ByObject: map[client.Object]cache.ByObject{}}
	if v.scope != nil {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range v.scope {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	c, err := cache.New(cfg, opts)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	v.cancel = cancel
	kinds := []client.Object{&flotillav1.ApplicationSet{}, &flotillav1.Application{}}
	if v.clusters {
		kinds = append(kinds, &flotillav1.MemberCluster{})
	}
	bump := toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { v.version.Add(1) },
		UpdateFunc: func(any, any) { v.version.Add(1) },
		DeleteFunc: func(any) { v.version.Add(1) },
	}
	for _, k := range kinds {
		inf, err := c.GetInformer(cctx, k, cache.BlockUntilSynced(false))
		if err != nil {
			cancel()
			return nil, err
		}
		if _, err := inf.AddEventHandler(bump); err != nil {
			cancel()
			return nil, err
		}
	}
	go func() { _ = c.Start(cctx) }()
	syncCtx, done := context.WithTimeout(ctx, 60*time.Second)
	defer done()
	if !c.WaitForCacheSync(syncCtx) {
		cancel()
		return nil, fmt.Errorf("the dashboard's view of the hub did not sync within a minute")
	}
	direct, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		cancel()
		return nil, err
	}
	v.reader, v.direct = c, direct
	v.touch()
	return v, nil
}

func (v *view) touch() { v.lastUsed.Store(time.Now().Unix()) }

func (v *view) stop() { v.cancel() }

// snapshot is everything a page is built from, read from the cache once.
type snapshot struct {
	sets     []flotillav1.ApplicationSet
	apps     []flotillav1.Application // hub Applications only
	clusters []flotillav1.MemberCluster
	// clustersKnown: the identity may read MemberClusters.
	clustersKnown bool
}

func (v *view) read(ctx context.Context) (*snapshot, error) {
	s := &snapshot{clustersKnown: v.clusters}
	// The cache's own objects, not copies: pages only read them (a deep
	// copy of 10,000 Applications per page view was most of its cost).
	noCopy := client.UnsafeDisableDeepCopy
	var sets flotillav1.ApplicationSetList
	if err := v.reader.List(ctx, &sets, noCopy); err != nil {
		return nil, err
	}
	var apps flotillav1.ApplicationList
	if err := v.reader.List(ctx, &apps, noCopy); err != nil {
		return nil, err
	}
	s.sets = sets.Items
	for _, a := range apps.Items {
		if !flotillav1.IsSpokeCopy(&a) {
			s.apps = append(s.apps, a)
		}
	}
	if v.clusters {
		var mcs flotillav1.MemberClusterList
		if err := v.reader.List(ctx, &mcs, noCopy); err != nil {
			return nil, err
		}
		s.clusters = mcs.Items
	}
	slices.SortFunc(s.sets, func(a, b flotillav1.ApplicationSet) int { return compareKeys(a.Namespace, a.Name, b.Namespace, b.Name) })
	return s, nil
}

// events are the recent Events about one object, newest first, read
// uncached with the identity's own client.
func (v *view) events(ctx context.Context, namespace, kind, name string) []corev1.Event {
	var list corev1.EventList
	if err := v.direct.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{"involvedObject.name": name, "involvedObject.kind": kind}); err != nil {
		return nil
	}
	slices.SortFunc(list.Items, func(a, b corev1.Event) int { return lastSeen(b).Compare(lastSeen(a)) })
	if len(list.Items) > 20 {
		list.Items = list.Items[:20]
	}
	return list.Items
}

func lastSeen(e corev1.Event) time.Time {
	for _, t := range []time.Time{e.LastTimestamp.Time, e.EventTime.Time, e.CreationTimestamp.Time} {
		if !t.IsZero() {
			return t
		}
	}
	return time.Time{}
}

func compareKeys(ans, an, bns, bn string) int {
	if ans != bns {
		if ans < bns {
			return -1
		}
		return 1
	}
	switch {
	case an < bn:
		return -1
	case an > bn:
		return 1
	}
	return 0
}

// views keeps one view per identity, dropping those unused for a while.
type views struct {
	mu    sync.Mutex
	byKey map[string]*view
	idle  time.Duration
}

func (vs *views) get(ctx context.Context, key string, start func(context.Context) (*view, error)) (*view, error) {
	vs.mu.Lock()
	v, ok := vs.byKey[key]
	vs.mu.Unlock()
	if ok {
		v.touch()
		return v, nil
	}
	v, err := start(ctx)
	if err != nil {
		return nil, err
	}
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if old, ok := vs.byKey[key]; ok { // started twice at once: keep one
		v.stop()
		return old, nil
	}
	vs.byKey[key] = v
	return v, nil
}

// sweep stops the views idle for longer than vs.idle.
func (vs *views) sweep() {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	for k, v := range vs.byKey {
		if time.Since(time.Unix(v.lastUsed.Load(), 0)) > vs.idle {
			v.stop()
			delete(vs.byKey, k)
		}
	}
}

func (vs *views) drop(key string) {
	vs.mu.Lock()
	defer vs.mu.Unlock()
	if v, ok := vs.byKey[key]; ok {
		v.stop()
		delete(vs.byKey, key)
	}
}
