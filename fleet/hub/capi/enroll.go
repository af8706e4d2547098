package capi

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clusterv1 "sigs.k8s.io/cluster-api/api/core/v1beta2"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/enroll"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
)

// Annotations on the hub's kubeconfig Secret of an imported cluster.
const (
	// annotationSource is a hash of the CAPI kubeconfig it was enrolled
	// with: a new one (rotated CAPI credentials) enrolls again.
	annotationSource = "flotilla.dev/capi-kubeconfig-sha256"
	// annotationRevoke lists the previous hub token Secrets on the
	// cluster, deleted once the hub uses the new token (no 401 window).
	annotationRevoke = "flotilla.dev/revoke-after-switch"
)

// enrolled makes sure the imported cluster runs the agent and the hub
// holds a least-privilege token for it (never CAPI's admin kubeconfig),
// renewing the token a quarter of its life before it expires. It returns
// when to look again.
func (r *Reconciler) enrolled(ctx context.Context, c *clusterv1.Cluster, secretName, ref string, capiKubeconfig []byte, mc *flotillav1.MemberCluster) (time.Duration, error) {
	sum := sha256.Sum256(capiKubeconfig)
	source := hex.EncodeToString(sum[:])
	current := &corev1.Secret{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: secretName}, current)
	if client.IgnoreNotFound(err) != nil {
		return 0, err
	}
	renewAt := r.renewAt(current)
	if err == nil && current.Annotations[annotationSource] == source && time.Now().Before(renewAt) {
		if err := r.revokeAfterSwitch(ctx, capiKubeconfig, current, mc); err != nil {
			return 0, err
		}
		// The CAPI Secret is read again every Resync (it is not cached):
		// rotated CAPI credentials enroll again.
		return min(r.Resync, time.Until(renewAt)), nil
	}
	cfg, _, err := kubeconfig.Parse(capiKubeconfig, false, kubeconfig.DefaultLimits)
	if err != nil {
		return 0, fmt.Errorf("the kubeconfig Secret of Cluster %s/%s: %w", c.Namespace, c.Name, err)
	}
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		return 0, err
	}
	values := map[string]any{}
	if r.AgentImage != "" {
		repo, tag := enroll.SplitImage(r.AgentImage)
		values["image"] = map[string]any{"repository": repo, "tag": tag}
	}
	objs, err := enroll.AgentObjects(flotillav1.SystemNamespace, values)
	if err != nil {
		return 0, err
	}
	if err := enroll.InstallAgent(ctx, admin, objs, flotillav1.FieldManagerHubCAPI); err != nil {
		return 0, fmt.Errorf("install the agent on Cluster %s/%s: %w", c.Namespace, c.Name, err)
	}
	tok, err := enroll.IssueHubToken(ctx, cfg, admin, enroll.TokenRequest{Namespace: flotillav1.SystemNamespace, Server: cfg.Host, TTL: r.TokenTTL})
	if err != nil {
		return 0, fmt.Errorf("issue the hub's token on Cluster %s/%s: %w", c.Namespace, c.Name, err)
	}
	var previous []string
	for _, s := range tok.Previous {
		previous = append(previous, s.Name)
	}
	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: r.Namespace, Labels: map[string]string{flotillav1.LabelCAPICluster: ref},
			Annotations: map[string]string{annotationSource: source, annotationRevoke: strings.Join(previous, ","),
				flotillav1.AnnotationTokenExpires: tok.Expires.UTC().Format(time.RFC3339)}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{"value": tok.Kubeconfig},
	}
	if err := kube.Apply(ctx, r.Client, secret, flotillav1.FieldManagerHubCAPI); err != nil {
		return 0, fmt.Errorf("store the hub's kubeconfig for Cluster %s/%s: %w", c.Namespace, c.Name, err)
	}
	return 10 * time.Second, nil // then revoke the previous tokens, once the hub uses the new one
}

// renewAt is when the hub's token in secret is renewed: a quarter of its
// life before it expires.
func (r *Reconciler) renewAt(secret *corev1.Secret) time.Time {
	expires, err := time.Parse(time.RFC3339, secret.Annotations[flotillav1.AnnotationTokenExpires])
	if err != nil {
		return time.Time{}
	}
	return expires.Add(-r.TokenTTL / 4)
}

// revokeAfterSwitch deletes the previous hub tokens once the hub probed the
// cluster with the current Secret (MemberCluster status.credentialsVersion).
func (r *Reconciler) revokeAfterSwitch(ctx context.Context, capiKubeconfig []byte, secret *corev1.Secret, mc *flotillav1.MemberCluster) error {
	list := secret.Annotations[annotationRevoke]
	if list == "" || mc == nil || mc.Status.CredentialsVersion != secret.ResourceVersion {
		return nil
	}
	cfg, _, err := kubeconfig.Parse(capiKubeconfig, false, kubeconfig.DefaultLimits)
	if err != nil {
		return err
	}
	admin, err := client.New(cfg, client.Options{})
	if err != nil {
		return err
	}
	for _, name := range strings.Split(list, ",") {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: flotillav1.SystemNamespace, Name: name}}
		if err := client.IgnoreNotFound(admin.Delete(ctx, s)); err != nil {
			return fmt.Errorf("revoke the previous hub token (Secret %s): %w", name, err)
		}
	}
	patch := client.MergeFrom(secret.DeepCopy())
	delete(secret.Annotations, annotationRevoke)
	return r.Client.Patch(ctx, secret, patch)
}
