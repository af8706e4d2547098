package agent

import (
	"context"
	"sync"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/selection"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// watcher watches every kind the agent applied, through a cache limited to
// objects carrying the Application label, and re-queues the owning
// Application on any change (health) — marking it dirty when someone other
// than the agent changed it or it vanished (drift).
type watcher struct {
	cache     cache.Cache
	ctrl      controller.Controller
	namespace string
	dirty     func(types.NamespacedName)

	mu   sync.Mutex
	seen map[schema.GroupVersionKind]bool
}

func newWatcher(mgr ctrl.Manager, c controller.Controller, namespace string, watchNamespaces []string, dirty func(types.NamespacedName)) (*watcher, error) {
	req, err := labels.NewRequirement(flotillav1.LabelApplication, selection.Exists, nil)
	if err != nil {
		return nil, err
	}
	opts := cache.Options{
		Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper(),
		DefaultLabelSelector: labels.NewSelector().Add(*req),
	}
	if len(watchNamespaces) > 0 {
		opts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range watchNamespaces {
			opts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	objCache, err := cache.New(mgr.GetConfig(), opts)
	if err != nil {
		return nil, err
	}
	if err := mgr.Add(objCache); err != nil {
		return nil, err
	}
	return &watcher{cache: objCache, ctrl: c, namespace: namespace, dirty: dirty, seen: map[schema.GroupVersionKind]bool{}}, nil
}

func (w *watcher) ensure(_ context.Context, results []Result) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, r := range results {
		if r.Live == nil {
			continue
		}
		gvk := r.Ref.GVK()
		if w.seen[gvk] {
			continue
		}
		u := &unstructured.Unstructured{}
		u.SetGroupVersionKind(gvk)
		src := source.Kind(w.cache, client.Object(u), handler.Funcs{
			// The first list reports existing objects as created: one edited
			// before the watch started is caught here.
			CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueueT) {
				if key, ok := w.owner(e.Object); ok && changedByOther(e.Object) {
					w.dirty(key)
					q.Add(reconcile.Request{NamespacedName: key})
				}
			},
			UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueueT) {
				if key, ok := w.owner(e.ObjectNew); ok {
					if changedByOther(e.ObjectNew) {
						w.dirty(key)
					}
					q.Add(reconcile.Request{NamespacedName: key})
				}
			},
			DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueueT) {
				if key, ok := w.owner(e.Object); ok {
					w.dirty(key)
					q.Add(reconcile.Request{NamespacedName: key})
				}
			},
		})
		if err := w.ctrl.Watch(src); err != nil {
			w.ctrl.GetLogger().Error(err, "Watch applied objects", "kind", gvk.String())
			continue
		}
		w.seen[gvk] = true
	}
}

func (w *watcher) owner(o client.Object) (types.NamespacedName, bool) {
	name := o.GetAnnotations()[flotillav1.AnnotationApplication]
	if name == "" {
		return types.NamespacedName{}, false
	}
	return types.NamespacedName{Namespace: w.namespace, Name: name}, true
}

// changedByOther: the newest non-status change was not the agent's.
func changedByOther(o client.Object) bool {
	var newest string
	var newestTime int64 = -1
	for _, e := range o.GetManagedFields() {
		// Status writes are not drift; /scale (kubectl scale) is, and the
		// apiserver records it without a time.
		if e.Subresource == "status" {
			continue
		}
		if e.Time == nil {
			if e.Manager != flotillav1.FieldManagerAgent {
				return true
			}
			continue
		}
		if t := e.Time.UnixNano(); t > newestTime || (t == newestTime && e.Manager != flotillav1.FieldManagerAgent) {
			newest, newestTime = e.Manager, t
		}
	}
	return newest != "" && newest != flotillav1.FieldManagerAgent
}
