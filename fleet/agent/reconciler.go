// Package agent is the spoke side of Flotilla: it syncs the Applications
// in its namespace. Each reconcile runs phases over one syncState:
// source (fetch Git, render) → prepare (record, objects) → drift check →
// apply → prune → assess health → report status. The record of applied
// objects and the prune decision are in the applied package.
package agent

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/helmchart"
)

// MaxResources bounds status.resources.
const MaxResources = 200

// Reconciler syncs the Applications in one namespace.
type Reconciler struct {
	Client    client.Client
	Git       *git.Cache
	Recorder  events.EventRecorder
	Namespace string
	// Renderer renders sources (default: InProcess with no options).
	Renderer Renderer
	// SyncInterval between Git re-checks (default 3m).
	SyncInterval time.Duration
	// HealthInterval between re-checks while something is Progressing (default 5s).
	HealthInterval time.Duration
	// WatchNamespaces limits applied-object watches; empty means cluster-wide.
	WatchNamespaces []string
	// Charts fetches Helm charts from Helm repositories and OCI registries
	// (default: anonymous, no loopback).
	Charts *helmchart.Fetcher
	// WatchCredentials wakes Applications when the repository credential
	// Secrets of the namespace change (the agent may watch them).
	WatchCredentials bool
	// HookTimeout bounds the wait for one group of Helm hooks (default DefaultHookTimeout).
	HookTimeout time.Duration
	// Discovery tells charts the spoke's version and API versions (nil: Helm's defaults).
	Discovery *Discovery
	// Policy is the spoke's own rules, which no hub can change.
	Policy Policy
	// DefaultServiceAccount applies the Applications whose Project names
	// none ("": the agent itself).
	DefaultServiceAccount string
	// Impersonation makes the clients that act as ServiceAccounts (nil:
	// the agent applies everything itself).
	Impersonation *Impersonation

	applier *Applier
	record  appliedRecord
	watcher *watcher

	// RenderCacheBytes bounds the renders kept between reconciles
	// (default DefaultRenderCacheBytes).
	RenderCacheBytes int64
	memos            *memoCache
	dirty            sync.Map // NamespacedName → true: an applied object changed or vanished
	// credentials counts changes of the repository credential Secrets: a
	// failed fetch is news only until they change.
	credentials atomic.Int64
}

// credentialsChanged wakes every Application of the namespace when a
// repository credential Secret changes.
func (r *Reconciler) credentialsChanged(ctx context.Context, _ client.Object) []reconcile.Request {
	r.credentials.Add(1)
	var apps flotillav1.ApplicationList
	if err := r.Client.List(ctx, &apps, client.InNamespace(r.Namespace)); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(apps.Items))
	for _, a := range apps.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&a)})
	}
	return reqs
}

// SetupWithManager registers the controller and the applied-object watches.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.SyncInterval == 0 {
		r.SyncInterval = 3 * time.Minute
	}
	if r.HealthInterval == 0 {
		r.HealthInterval = 5 * time.Second
	}
	if r.Renderer == nil {
		r.Renderer = InProcess{}
	}
	if r.Charts == nil {
		r.Charts = helmchart.New(helmchart.Options{})
	}
	r.applier = &Applier{Client: r.Client}
	r.record = appliedRecord{Client: r.Client}
	r.memos = newMemoCache(r.RenderCacheBytes)
	b := ctrl.NewControllerManagedBy(mgr).
		Named("agent").
		For(&flotillav1.Application{})
	if r.WatchCredentials {
		// New or rotated repository credentials: fetches that failed are tried again at once.
		b = b.Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.credentialsChanged))
	}
	c, err := b.WithOptions(controller.Options{MaxConcurrentReconciles: 8}).Build(r)
	if err != nil {
		return err
	}
	r.watcher, err = newWatcher(mgr, c, r.Namespace, r.WatchNamespaces, func(key types.NamespacedName) { r.dirty.Store(key, true) })
	return err
}

// Reconcile makes the cluster match one Application.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	start := time.Now()
	defer func() { syncDuration.Observe(time.Since(start).Seconds()) }()
	app := &flotillav1.Application{}
	if err := r.Client.Get(ctx, req.NamespacedName, app); err != nil {
		if apierrors.IsNotFound(err) {
			r.memos.remove(req.NamespacedName)
			r.dirty.Delete(req.NamespacedName)
			driftCorrections.DeleteLabelValues(req.Name)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if flotillav1.IsHubApplication(app) {
		return ctrl.Result{}, nil // the hub's own (in-cluster): its copy is what this agent syncs
	}
	if !app.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, r.finalize(ctx, app)
	}
	if !controllerutil.ContainsFinalizer(app, flotillav1.FinalizerResources) {
		patch := client.MergeFrom(app.DeepCopy())
		controllerutil.AddFinalizer(app, flotillav1.FinalizerResources)
		if err := r.Client.Patch(ctx, app, patch); err != nil {
			return ctrl.Result{}, err
		}
	}
	return r.sync(ctx, app)
}

// phase is one step of a sync. done ends the sync early: what the state's
// outcome says so far is reported.
type phase func(ctx context.Context, s *syncState) (done bool, err error)

// sync runs the phases, then reports.
func (r *Reconciler) sync(ctx context.Context, app *flotillav1.Application) (ctrl.Result, error) {
	s := newSyncState(app)
	for _, p := range []phase{r.admit, r.fetchSource, r.renderSource, r.prepare, r.checkDrift, r.applyObjects, r.prune, r.assess, r.postSync} {
		done, err := p(ctx, s)
		if err != nil {
			return ctrl.Result{}, err
		}
		if done {
			break
		}
	}
	s.handled() // even when a phase failed: the request was tried, the conditions say how it went
	return r.report(ctx, app, s.out)
}

// finalize deletes what the Application applied (unless it preserves its
// resources), then its record, then releases the finalizer.
func (r *Reconciler) finalize(ctx context.Context, app *flotillav1.Application) error {
	if !controllerutil.ContainsFinalizer(app, flotillav1.FinalizerResources) {
		return nil
	}
	preserve := app.Spec.SyncPolicy != nil && app.Spec.SyncPolicy.PreserveResourcesOnDeletion
	if !preserve {
		refs, err := r.record.Load(ctx, app)
		if err != nil {
			return err
		}
		w, err := r.writerFor(app)
		if err != nil {
			return err
		}
		_, kept, err := deleteApplied(ctx, w, app.Name, refs, deletion{policy: propagation(app), unless: "Delete=false"})
		if err != nil {
			return fmt.Errorf("delete the Application's objects (%d left): %w", len(kept), err)
		}
		if len(kept) > 0 {
			return fmt.Errorf("delete the Application's objects: %d are still going (finalizers); looking again", len(kept))
		}
	}
	if err := r.record.Delete(ctx, app); err != nil {
		return err
	}
	patch := client.MergeFrom(app.DeepCopy())
	controllerutil.RemoveFinalizer(app, flotillav1.FinalizerResources)
	return client.IgnoreNotFound(r.Client.Patch(ctx, app, patch))
}
