// Package capi imports Cluster API clusters into the fleet: every
// clusters.cluster.x-k8s.io Cluster with a <name>-kubeconfig Secret becomes
// a MemberCluster (with the labels CopyLabels names, plus one naming the
// CAPI cluster), and leaves the fleet when the Cluster is deleted.
package capi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

// Available reports whether the hub serves the Cluster API Cluster kind.
func Available(mapper meta.RESTMapper) bool {
	_, err := mapper.RESTMapping(schema.GroupKind{Group: clusterv1.GroupVersion.Group, Kind: "Cluster"}, clusterv1.GroupVersion.Version)
	return err == nil
}

// Reconciler imports CAPI Clusters.
type Reconciler struct {
	Client client.Client
	// APIReader reads CAPI kubeconfig Secrets without caching every Secret.
	APIReader client.Reader
	// Namespace receives copies of the kubeconfig Secrets (flotilla-system).
	Namespace string
	Recorder  events.EventRecorder
	// Resync re-checks Clusters whose kubeconfig is not there yet (default 30s).
	Resync time.Duration
	// CopyLabels are the Cluster label keys (globs, e.g. "env",
	// "fleet.example.com/*") copied to the MemberCluster. None by default:
	// whoever may create a Cluster and its Secret must not choose which
	// sets deploy there (env=prod) unless the hub's operator says so.
	CopyLabels []string
	// AgentImage is the agent image installed on imported clusters
	// (repository[:tag]; empty: the chart's default).
	AgentImage string
	// TokenTTL is the lifetime of the hub's token on an imported cluster
	// (default a year); it is renewed when a quarter of it is left.
	TokenTTL time.Duration
}

// SetupWithManager registers the importer.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.Resync == 0 {
		r.Resync = 30 * time.Second
	}
	if r.TokenTTL == 0 {
		r.TokenTTL = 365 * 24 * time.Hour
	}
	return ctrl.NewControllerManagedBy(mgr).Named("capi-import").For(&clusterv1.Cluster{}).Complete(r)
}

// MemberName is the MemberCluster name of a CAPI Cluster: its own name.
func MemberName(c types.NamespacedName) string { return c.Name }

// refLabel is a label-safe reference to a CAPI cluster.
func refLabel(c types.NamespacedName) string {
	v := c.Namespace + "." + c.Name
	if len(v) <= 63 {
		return v
	}
	sum := sha256.Sum256([]byte(v))
	return v[:50] + "-" + hex.EncodeToString(sum[:6])
}

// Reconcile imports, updates or removes one Cluster's MemberCluster.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	c := &clusterv1.Cluster{}
	err := r.Client.Get(ctx, req.NamespacedName, c)
	if apierrors.IsNotFound(err) || (err == nil && !c.DeletionTimestamp.IsZero()) {
		return ctrl.Result{}, r.remove(ctx, req.NamespacedName)
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	src := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: c.Namespace, Name: c.Name + "-kubeconfig"}, src); err != nil {
		if apierrors.IsNotFound(err) {
			return ctrl.Result{RequeueAfter: r.Resync}, nil // not provisioned yet
		}
		return ctrl.Result{}, err
	}
	kubeconfig := src.Data["value"]
	if len(kubeconfig) == 0 {
		return ctrl.Result{RequeueAfter: r.Resync}, nil
	}

	name := MemberName(req.NamespacedName)
	existing := &flotillav1.MemberCluster{}
	if err := r.Client.Get(ctx, types.NamespacedName{Name: name}, existing); err == nil {
		if existing.Annotations[flotillav1.AnnotationCAPICluster] != req.String() {
			msg := fmt.Sprintf("MemberCluster %s already exists and was not imported from this Cluster: rename one of them", name)
			if r.Recorder != nil {
				r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, flotillav1.ReasonNameConflict, "Import", "%s", msg)
			}
			return ctrl.Result{}, nil
		}
	} else if !apierrors.IsNotFound(err) {
		return ctrl.Result{}, err
	}

	secretName := fmt.Sprintf("capi-%s-%s-kubeconfig", c.Namespace, c.Name)
	if len(secretName) > 253 {
		secretName = "capi-" + refLabel(req.NamespacedName) + "-kubeconfig"
	}
	ref := refLabel(req.NamespacedName)
	next, err := r.enrolled(ctx, c, secretName, ref, kubeconfig, existing)
	if err != nil {
		if r.Recorder != nil {
			r.Recorder.Eventf(c, nil, corev1.EventTypeWarning, flotillav1.ReasonEnrollFailed, "Import", "%s", err.Error())
		}
		return ctrl.Result{RequeueAfter: r.Resync}, nil
	}
	labels := map[string]string{}
	for k, v := range c.Labels {
		if r.copies(k) {
			labels[k] = v
		}
	}
	labels[flotillav1.LabelCAPICluster] = ref
	mc := &flotillav1.MemberCluster{
		TypeMeta: metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "MemberCluster"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels,
			Annotations: map[string]string{flotillav1.AnnotationCAPICluster: req.String()}},
		Spec: flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: secretName, Key: "value"},
			AgentNamespace: flotillav1.SystemNamespace},
	}
	if err := kube.Apply(ctx, r.Client, mc, flotillav1.FieldManagerHubCAPI); err != nil {
		return ctrl.Result{}, fmt.Errorf("import Cluster %s: %w", req, err)
	}
	return ctrl.Result{RequeueAfter: next}, nil
}

// remove deletes what was imported for a Cluster that is gone or going.
func (r *Reconciler) remove(ctx context.Context, key types.NamespacedName) error {
	ref := refLabel(key)
	var mcs flotillav1.MemberClusterList
	if err := r.Client.List(ctx, &mcs, client.MatchingLabels{flotillav1.LabelCAPICluster: ref}); err != nil {
		return err
	}
	for i := range mcs.Items {
		if mcs.Items[i].Annotations[flotillav1.AnnotationCAPICluster] == key.String() {
			if err := client.IgnoreNotFound(r.Client.Delete(ctx, &mcs.Items[i])); err != nil {
				return err
			}
		}
	}
	return client.IgnoreNotFound(r.Client.DeleteAllOf(ctx, &corev1.Secret{}, client.InNamespace(r.Namespace),
		client.MatchingLabels{flotillav1.LabelCAPICluster: ref}))
}

// copies reports whether a Cluster label key is one CopyLabels names.
func (r *Reconciler) copies(key string) bool {
	if strings.HasPrefix(key, "flotilla.dev/") {
		return false // Flotilla's own labels are never taken from a Cluster
	}
	for _, glob := range r.CopyLabels {
		if ok, _ := path.Match(glob, key); ok {
			return true
		}
	}
	return false
}
