// Package repocreds delivers repository credentials to spokes: each
// MemberCluster's agent namespace gets a copy of exactly the hub's
// credential Secrets that its Applications' repoURLs need (the longest
// matching URL prefix), updated when the hub's copy changes and deleted
// when no Application there needs it any more.
package repocreds

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Annotations on a spoke copy: which hub Secret it copies, at which version.
const (
	AnnotationSourceUID             = "flotilla.dev/source-uid"
	AnnotationSourceResourceVersion = "flotilla.dev/source-resource-version"
	// SpokePrefix starts the name of every copy (flotilla-<hub Secret>).
	SpokePrefix = "flotilla-"
)

// credentialKeys are the data keys copied; nothing else of the hub Secret goes to a spoke.
var credentialKeys = []string{git.SecretKeyURL, git.SecretKeyUsername, git.SecretKeyPassword, git.SecretKeyToken,
	git.SecretKeySSHPrivateKey, git.SecretKeySSHKnownHosts, git.SecretKeyCABundle, git.SecretKeyType}

// Reconciler copies credentials to one MemberCluster per reconcile.
type Reconciler struct {
	Client client.Client
	Pool   *spokes.Pool
	// Namespace is the hub's namespace, where its credential Secrets live.
	Namespace string
	Recorder  events.EventRecorder
}

// SetupWithManager watches MemberClusters, the Applications bound to them
// and the hub's credential Secrets.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	isCredential := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetNamespace() == r.Namespace && o.GetLabels()[flotillav1.LabelSecretType] == git.SecretTypeRepository
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("repocreds").
		For(&flotillav1.MemberCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}, predicate.LabelChangedPredicate{})).
		Watches(&flotillav1.Application{}, handler.EnqueueRequestsFromMapFunc(clusterOf), builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.allClusters), builder.WithPredicates(isCredential)).
		Complete(r)
}

func clusterOf(_ context.Context, o client.Object) []reconcile.Request {
	a, ok := o.(*flotillav1.Application)
	if !ok || flotillav1.IsSpokeCopy(a) || a.Spec.Destination.Cluster == "" {
		return nil
	}
	return []reconcile.Request{{NamespacedName: client.ObjectKey{Name: a.Spec.Destination.Cluster}}}
}

func (r *Reconciler) allClusters(ctx context.Context, _ client.Object) []reconcile.Request {
	var list flotillav1.MemberClusterList
	if err := r.Client.List(ctx, &list); err != nil {
		return nil
	}
	reqs := make([]reconcile.Request, 0, len(list.Items))
	for _, mc := range list.Items {
		reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKey{Name: mc.Name}})
	}
	return reqs
}

// notConnectedRetry is how soon a cluster not yet in the pool is tried again.
const notConnectedRetry = 10 * time.Second

// Reconcile makes the cluster's copies match what its Applications need.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &flotillav1.MemberCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, mc); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !mc.DeletionTimestamp.IsZero() || mc.Spec.Paused {
		return ctrl.Result{}, nil
	}
	rc, ok := r.Pool.Get(mc.Name)
	if !ok {
		return ctrl.Result{RequeueAfter: notConnectedRetry}, nil
	}
	want, err := r.needed(ctx, mc.Name)
	if err != nil {
		return ctrl.Result{}, err
	}
	ns := agentNamespace(mc)
	if err := r.sync(ctx, rc, ns, want); err != nil {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, "CredentialsNotDelivered", "Deliver", "repository credentials for %s/%s: %s", mc.Name, ns, err.Error())
		return ctrl.Result{}, err
	}
	return ctrl.Result{}, nil
}

func agentNamespace(mc *flotillav1.MemberCluster) string {
	if mc.Spec.AgentNamespace != "" {
		return mc.Spec.AgentNamespace
	}
	return flotillav1.SystemNamespace
}

// needed is the hub credential Secrets the cluster's Applications use, by name.
func (r *Reconciler) needed(ctx context.Context, cluster string) (map[string]*corev1.Secret, error) {
	var apps flotillav1.ApplicationList
	if err := r.Client.List(ctx, &apps, client.MatchingFields{flotillav1.IndexApplicationCluster: cluster}); err != nil {
		return nil, fmt.Errorf("list the Applications of %s: %w", cluster, err)
	}
	var secrets corev1.SecretList
	if err := r.Client.List(ctx, &secrets, client.InNamespace(r.Namespace), client.MatchingLabels{flotillav1.LabelSecretType: git.SecretTypeRepository}); err != nil {
		return nil, fmt.Errorf("list the hub's repository Secrets: %w", err)
	}
	prefixes := make([]string, len(secrets.Items))
	for i, s := range secrets.Items {
		prefixes[i] = string(s.Data[git.SecretKeyURL])
	}
	want := map[string]*corev1.Secret{}
	for _, a := range apps.Items {
		if i := git.BestMatch(prefixes, a.Spec.Source.RepoURL); i >= 0 {
			want[secrets.Items[i].Name] = &secrets.Items[i]
		}
	}
	return want, nil
}

// sync writes the copies that are missing or stale and deletes the ones
// no longer needed (only the hub's own copies, by label).
func (r *Reconciler) sync(ctx context.Context, rc *spokes.Cluster, ns string, want map[string]*corev1.Secret) error {
	var have corev1.SecretList
	if err := rc.Cluster.GetAPIReader().List(ctx, &have, client.InNamespace(ns),
		client.MatchingLabels{flotillav1.LabelSecretType: git.SecretTypeRepository, flotillav1.LabelManagedBy: flotillav1.FieldManagerHub}); err != nil {
		return fmt.Errorf("list the copies: %s", kube.FirstLine(err))
	}
	current := map[string]corev1.Secret{}
	for _, s := range have.Items {
		current[s.Name] = s
	}
	for _, name := range slices.Sorted(maps.Keys(want)) {
		src := want[name]
		copyName := spokeName(name)
		if cur, ok := current[copyName]; ok && cur.Annotations[AnnotationSourceUID] == string(src.UID) &&
			cur.Annotations[AnnotationSourceResourceVersion] == src.ResourceVersion {
			delete(current, copyName)
			continue
		}
		delete(current, copyName)
		if err := rc.Client().Patch(ctx, spokeCopy(src, copyName, ns), client.Apply, client.FieldOwner(flotillav1.FieldManagerHub), client.ForceOwnership); err != nil {
			return fmt.Errorf("write Secret %s: %s", copyName, kube.FirstLine(err))
		}
	}
	for _, stale := range current {
		if err := rc.Client().Delete(ctx, &stale); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
			return fmt.Errorf("delete Secret %s: %s", stale.Name, kube.FirstLine(err))
		}
	}
	return nil
}

// spokeName is the copy's name: flotilla-<hub Secret>, cut to a valid length.
func spokeName(hubName string) string {
	n := SpokePrefix + hubName
	if len(n) > 253 {
		n = n[:253]
	}
	return n
}

func spokeCopy(src *corev1.Secret, name, ns string) *corev1.Secret {
	data := map[string][]byte{}
	for _, k := range credentialKeys {
		if v, ok := src.Data[k]; ok {
			data[k] = v
		}
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns,
			Labels: map[string]string{flotillav1.LabelSecretType: git.SecretTypeRepository, flotillav1.LabelManagedBy: flotillav1.FieldManagerHub},
			Annotations: map[string]string{AnnotationSourceUID: string(src.UID), AnnotationSourceResourceVersion: src.ResourceVersion,
				flotillav1.AnnotationHubNamespace: src.Namespace}},
		Type: corev1.SecretTypeOpaque,
		Data: data,
	}
}
