// Package enroll prepares a cluster to join the fleet, the way `flotilla
// cluster register` and the hub's Cluster API import both do it: the agent
// chart installed with the cluster's own (admin) credentials, then a
// least-privilege token for the hub's ServiceAccount there, which is all
// the hub keeps.
package enroll

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
)

// AgentObjects renders the agent chart for namespace (values as the chart
// takes them), the namespace first.
func AgentObjects(namespace string, values map[string]any) ([]*unstructured.Unstructured, error) {
	r, err := charts.Render(charts.Agent, namespace, values)
	if err != nil {
		return nil, err
	}
	ns := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "v1", "kind": "Namespace",
		"metadata": map[string]any{"name": namespace, "labels": map[string]any{"app.kubernetes.io/part-of": "flotilla"}}}}
	return append([]*unstructured.Unstructured{ns}, r.Objects...), nil
}

// InstallAgent applies the agent chart's objects on a cluster with
// server-side apply as manager.
func InstallAgent(ctx context.Context, c client.Client, objs []*unstructured.Unstructured, manager string) error {
	for _, o := range objs {
		if err := kube.Apply(ctx, c, o, manager); err != nil {
			return fmt.Errorf("apply %s %s: %w", o.GetKind(), o.GetName(), err)
		}
	}
	return nil
}

// HubToken is a new token for the hub's ServiceAccount, in a kubeconfig.
type HubToken struct {
	Kubeconfig []byte
	Expires    time.Time
	// Previous are the Secrets binding the tokens it replaces: revoke them
	// (delete) once the hub uses the new one.
	Previous []corev1.Secret
}

// TokenRequest says for whom and how a hub token is issued.
type TokenRequest struct {
	// Namespace of the agent, where ServiceAccount flotilla-hub lives.
	Namespace string
	// Server is the address the hub reaches the cluster at.
	Server string
	// CheckServer, when set, is where to check the token from here (the
	// hub's address may not be reachable from this side).
	CheckServer string
	TTL         time.Duration
}

// IssueHubToken creates a binding Secret, requests a token for
// ServiceAccount flotilla-hub bound to it, and checks that the token works
// with exactly the hub's rights before returning it.
func IssueHubToken(ctx context.Context, cfg *rest.Config, c client.Client, req TokenRequest) (*HubToken, error) {
	ns := req.Namespace
	old := &corev1.SecretList{}
	if err := c.List(ctx, old, client.InNamespace(ns), client.HasLabels{flotillav1.LabelHubToken}); err != nil {
		return nil, fmt.Errorf("list hub token Secrets: %w", err)
	}
	binding := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{GenerateName: "flotilla-hub-token-", Namespace: ns,
		Labels: map[string]string{flotillav1.LabelHubToken: "true", "app.kubernetes.io/managed-by": "flotilla"}}, Type: corev1.SecretTypeOpaque}
	if err := c.Create(ctx, binding); err != nil {
		return nil, fmt.Errorf("create the hub token's Secret: %w", err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "flotilla-hub", &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		ExpirationSeconds: ptr.To(int64(req.TTL.Seconds())),
		BoundObjectRef:    &authenticationv1.BoundObjectReference{Kind: "Secret", APIVersion: "v1", Name: binding.Name, UID: binding.UID},
	}}, metav1.CreateOptions{})
	if err != nil {
		_ = c.Delete(ctx, binding)
		return nil, fmt.Errorf("request a token for ServiceAccount %s/flotilla-hub: %w", ns, err)
	}
	ca := cfg.CAData
	if len(ca) == 0 && cfg.CAFile != "" {
		if ca, err = os.ReadFile(cfg.CAFile); err != nil {
			return nil, fmt.Errorf("read the cluster's CA: %w", err)
		}
	}
	raw, err := tokenKubeconfig(req.Server, ca, cfg, tr.Status.Token, ns)
	if err != nil {
		return nil, err
	}
	check := raw
	if req.CheckServer != "" && req.CheckServer != req.Server {
		if check, err = tokenKubeconfig(req.CheckServer, ca, cfg, tr.Status.Token, ns); err != nil {
			return nil, err
		}
	}
	if err := CheckHubToken(ctx, check, ns); err != nil {
		_ = c.Delete(ctx, binding)
		return nil, fmt.Errorf("the new hub token does not work: %w", err)
	}
	return &HubToken{Kubeconfig: raw, Expires: tr.Status.ExpirationTimestamp.Time, Previous: old.Items}, nil
}

func tokenKubeconfig(server string, ca []byte, cfg *rest.Config, token, ns string) ([]byte, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["spoke"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca, InsecureSkipTLSVerify: cfg.Insecure, TLSServerName: cfg.ServerName}
	kc.AuthInfos["flotilla-hub"] = &clientcmdapi.AuthInfo{Token: token}
	kc.Contexts["spoke"] = &clientcmdapi.Context{Cluster: "spoke", AuthInfo: "flotilla-hub", Namespace: ns}
	kc.CurrentContext = "spoke"
	return clientcmd.Write(*kc)
}

// CheckHubToken checks that a hub kubeconfig may list Leases in ns (a
// fresh ServiceAccount and RoleBinding take a moment to be honoured).
func CheckHubToken(ctx context.Context, raw []byte, ns string) error {
	cfg, _, err := kubeconfig.Parse(raw, false, kubeconfig.DefaultLimits)
	if err != nil {
		return err
	}
	last := errors.New("not checked")
	_ = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 15*time.Second, true, func(ctx context.Context) (bool, error) {
		last = tryHubToken(ctx, cfg, ns)
		return last == nil, nil
	})
	return last
}

func tryHubToken(ctx context.Context, cfg *rest.Config, ns string) error {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	if _, err := cs.CoordinationV1().Leases(ns).List(ctx, metav1.ListOptions{Limit: 1}); err != nil {
		return fmt.Errorf("list Leases in %s: %w", ns, err)
	}
	return nil
}

// SplitImage splits repository[:tag], minding registry ports
// (registry.local:5000/agent has no tag).
func SplitImage(image string) (string, string) {
	i := strings.LastIndex(image, ":")
	if i < 0 || strings.Contains(image[i:], "/") {
		return image, ""
	}
	return image[:i], image[i+1:]
}
