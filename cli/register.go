package cli

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
	"github.com/flotilla-dev/flotilla/internal/enroll"
	"github.com/flotilla-dev/flotilla/internal/kube"
)

const (
	// flotillav1.LabelHubToken marks the Secrets the hub's tokens are bound to: deleting
	// one revokes its token.
	// kubeconfigKey is the key of the kubeconfig in the hub Secret.
	kubeconfigKey       = "value"
	agentModeDeployment = "deployment"
	agentModeLocal      = "local"
)

// clusterTarget addresses a spoke (--kubeconfig/--context, as for
// `argocd cluster add` and `clusteradm join`) and the hub
// (--hub-kubeconfig/--hub-context, by default the same kubeconfig file's
// current context).
type clusterTarget struct {
	spoke, hub     kubeFlags
	agentNamespace string
	timeout        time.Duration
}

func (t *clusterTarget) bind(cmd *cobra.Command) {
	f := cmd.Flags()
	t.spoke.bind(f, "", "the cluster being registered")
	t.hub.bind(f, "hub-", "the hub (default: --kubeconfig's current context)")
	f.StringVar(&t.agentNamespace, "agent-namespace", flotillav1.SystemNamespace, "namespace of the agent on the cluster")
	f.DurationVar(&t.timeout, "timeout", 3*time.Minute, "how long to wait")
}

func (t *clusterTarget) hubFlags() kubeFlags {
	h := t.hub
	if h.kubeconfig == "" {
		h.kubeconfig = t.spoke.kubeconfig
	}
	return h
}

type registerOptions struct {
	clusterTarget
	labels    string
	server    string
	agentMode string
	values    chartValues
	tokenTTL  time.Duration
	wait      bool
}

func newClusterRegisterCommand(s Streams) *cobra.Command {
	o := &registerOptions{}
	cmd := &cobra.Command{
		Use:   "register NAME --context SPOKE_CONTEXT [--labels k=v,...]",
		Short: "Add a cluster to the fleet: install the agent there and a MemberCluster on the hub",
		Long: `Register a cluster with the hub.

On the cluster (--kubeconfig/--context) it installs the Application CRD, the
agent's namespace, ServiceAccount, RBAC and Deployment (the flotilla-agent
chart built into this binary), and an identity for the hub: a ServiceAccount
whose only rights are a Role on Applications, Leases and Events in the
agent's namespace, with a token bound to a Secret there.

On the hub (--hub-kubeconfig/--hub-context; by default the current context of
the same kubeconfig) it stores a kubeconfig for that token in a Secret in
flotilla-system and creates the MemberCluster, then waits until the hub
reports it Ready.

Running it again updates everything and rotates the hub's token (the old
one is revoked once the hub has the new one).`,
		Example: `  flotilla cluster register prod-eu-1 --context prod-eu-1 --labels env=prod,region=eu
  flotilla cluster register dev --kubeconfig dev.yaml --context dev --hub-kubeconfig ~/.kube/config --hub-context hub
  flotilla cluster register kind-1 --context kind-1 --server https://kind-1-control-plane:6443   # the hub sees it under another name`,
		Args: exactlyOneName("cluster"),
		RunE: func(cmd *cobra.Command, args []string) error { return o.run(cmd.Context(), s, args[0]) },
	}
	o.clusterTarget.bind(cmd)
	f := cmd.Flags()
	f.StringVarP(&o.labels, "labels", "l", "", "MemberCluster labels, comma-separated key=value pairs (clusters generators select on them)")
	f.StringVar(&o.server, "server", "", "API server URL the hub should use (default: the one in --kubeconfig)")
	f.StringVar(&o.agentMode, "agent-mode", agentModeDeployment, "deployment: run the agent as a Deployment on the cluster; local: install everything but the Deployment (you run flotilla-agent yourself, as the sandbox does)")
	f.StringVar(&o.values.image, "agent-image", "", "agent image (repository[:tag]); default ghcr.io/flotilla-dev/flotilla-agent at this CLI's version")
	o.values.bind(f, "agent")
	f.DurationVar(&o.tokenTTL, "token-ttl", 365*24*time.Hour, "lifetime of the hub's token on the cluster (re-run register to rotate it)")
	f.BoolVar(&o.wait, "wait", true, "wait until the hub reports the cluster Ready")
	return cmd
}

func exactlyOneName(what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return fmt.Errorf("%s needs exactly one %s name, got %d: see '%s --help'", cmd.CommandPath(), what, len(args), cmd.CommandPath())
		}
		return nil
	}
}

// validateClusterName checks a MemberCluster name up front.
func validateClusterName(name string) error {
	if errs := validation.IsDNS1123Label(name); len(errs) > 0 {
		return fmt.Errorf("invalid cluster name %q: %s", name, strings.Join(errs, "; "))
	}
	return nil
}

// parseLabels parses k=v,k2=v2 and validates every key and value.
func parseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, pair := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
		if !ok {
			return nil, fmt.Errorf("invalid label %q: labels are key=value pairs, e.g. --labels env=prod,region=eu", pair)
		}
		if err := validateLabel(k, v); err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

func validateLabel(k, v string) error {
	if errs := validation.IsQualifiedName(k); len(errs) > 0 {
		return fmt.Errorf("invalid label key %q: %s", k, strings.Join(errs, "; "))
	}
	if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
		return fmt.Errorf("invalid label value %q for %s: %s", v, k, strings.Join(errs, "; "))
	}
	return nil
}

// registerOnHub stores the spoke's kubeconfig Secret and the MemberCluster.
// It returns the Secret's resourceVersion.
func (o *registerOptions) registerOnHub(ctx context.Context, s Streams, hub *conn, name string, labels map[string]string, token *hubToken) (string, error) {
	hubNS := hub.hubNamespace(ctx)
	fmt.Fprintf(s.ErrOut, "On the hub: storing the kubeconfig and creating MemberCluster %s\n", name)
	secretName := "cluster-" + name + "-kubeconfig"
	secret := &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{Name: secretName, Namespace: hubNS,
			Labels:      map[string]string{flotillav1.LabelCluster: name, "app.kubernetes.io/managed-by": "flotilla"},
			Annotations: map[string]string{flotillav1.AnnotationTokenExpires: token.Expires.UTC().Format(time.RFC3339)}},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{kubeconfigKey: token.Kubeconfig},
	}
	if err := kube.Apply(ctx, hub.client, secret, flotillav1.FieldManagerCLI); err != nil {
		return "", fmt.Errorf("store the kubeconfig Secret %s/%s on the hub: %w", hubNS, secretName, err)
	}
	if err := hub.client.Get(ctx, client.ObjectKeyFromObject(secret), secret); err != nil {
		return "", fmt.Errorf("read back the kubeconfig Secret %s/%s: %w", hubNS, secretName, err)
	}
	fmt.Fprintf(s.ErrOut, "  applied Secret %s/%s\n", hubNS, secretName)
	mc := &flotillav1.MemberCluster{
		TypeMeta:   metav1.TypeMeta{APIVersion: flotillav1.GroupVersion.String(), Kind: "MemberCluster"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: secretName, Key: kubeconfigKey},
			AgentNamespace: o.agentNamespace},
	}
	if err := kube.Apply(ctx, hub.client, mc, flotillav1.FieldManagerCLI); err != nil {
		return "", fmt.Errorf("apply MemberCluster %s on the hub: %w", name, err)
	}
	fmt.Fprintf(s.ErrOut, "  applied MemberCluster %s\n", name)
	return secret.ResourceVersion, nil
}

func (o *registerOptions) printNext(s Streams, name, spokeContext string) {
	fmt.Fprintf(s.Out, "Cluster %s is registered.\n", name)
	if o.agentMode == agentModeLocal {
		fmt.Fprintf(s.Out, "\nStart its agent (local mode):\n  flotilla-agent --kubeconfig %s --context %s --namespace %s --default-service-account flotilla-default\n", o.spoke.source(), spokeContext, o.agentNamespace)
	}
	fmt.Fprintf(s.Out, `
Next:
  flotilla cluster list                      # READY and AGENT columns
  flotilla cluster label %s env=prod    # clusters generators select on labels
  flotilla status                            # every ApplicationSet's rollout
`, name)
}

func (o *registerOptions) run(ctx context.Context, s Streams, name string) error {
	// Everything that can be checked is checked before anything is written.
	if err := validateClusterName(name); err != nil {
		return err
	}
	labels, err := parseLabels(o.labels)
	if err != nil {
		return err
	}
	if o.agentMode != agentModeDeployment && o.agentMode != agentModeLocal {
		return fmt.Errorf("--agent-mode %q: use deployment or local", o.agentMode)
	}
	if o.spoke.context == "" {
		return fmt.Errorf("--context is required: the kubeconfig context of the cluster to register (see 'kubectl config get-contexts')")
	}
	vals, err := o.values.values(true)
	if err != nil {
		return err
	}
	mergeMaps(vals, map[string]any{"deployment": map[string]any{"create": o.agentMode == agentModeDeployment}})
	agentChart, err := charts.Render(charts.Agent, o.agentNamespace, vals)
	if err != nil {
		return err
	}
	hub, err := o.hubFlags().connect(ctx, "the hub", cliScheme())
	if err != nil {
		return err
	}
	if err := requireHub(ctx, hub); err != nil {
		return err
	}
	spoke, err := o.spoke.connect(ctx, "cluster "+name, cliScheme())
	if err != nil {
		return err
	}
	server := o.server
	if server == "" {
		server = spoke.config.Host
	}
	if err := checkNameFree(ctx, hub, name, server, o.agentNamespace); err != nil {
		return err
	}

	fmt.Fprintf(s.ErrOut, "Registering cluster %s (context %q, %s) with the hub (context %q)\n", name, spoke.context, server, hub.context)
	fmt.Fprintf(s.ErrOut, "On cluster %s: installing the agent (%s mode) into %s\n", name, o.agentMode, o.agentNamespace)
	objs := append([]*unstructured.Unstructured{namespaceObject(o.agentNamespace)}, agentChart.Objects...)
	if err := applyAll(ctx, spoke, objs, s.ErrOut); err != nil {
		return err
	}
	token, err := o.issueHubToken(ctx, spoke, server)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.ErrOut, "  issued a token for ServiceAccount %s/flotilla-hub (expires %s)\n", o.agentNamespace, token.Expires.UTC().Format(time.RFC3339))
	if token.Expires.Before(time.Now().Add(o.tokenTTL - time.Hour)) {
		fmt.Fprintf(s.ErrOut, "  Warning: cluster %s capped the token's lifetime below --token-ttl %s: re-run flotilla cluster register before %s (the hub warns ahead, in CredentialsValid)\n",
			name, o.tokenTTL, token.Expires.UTC().Format(time.RFC3339))
	}
	secretVersion, err := o.registerOnHub(ctx, s, hub, name, labels, token)
	if err != nil {
		return err
	}
	if err := o.revokePrevious(ctx, s, hub, spoke, name, secretVersion, token.Previous); err != nil {
		return err
	}
	if o.wait {
		if err := waitClusterReady(ctx, hub, name, o.timeout, s); err != nil {
			return err
		}
	}
	o.printNext(s, name, spoke.context)
	return nil
}

// checkNameFree refuses to reuse a name for another API server, or to
// register one API server+namespace twice under two names.
func checkNameFree(ctx context.Context, hub *conn, name, server, agentNamespace string) error {
	list := &flotillav1.MemberClusterList{}
	if err := hub.client.List(ctx, list); err != nil {
		return fmt.Errorf("list MemberClusters on the hub: %w", err)
	}
	for i := range list.Items {
		mc := &list.Items[i]
		registered := registeredServer(ctx, hub, mc)
		ns := mc.Spec.AgentNamespace
		if ns == "" {
			ns = flotillav1.SystemNamespace
		}
		switch {
		case mc.Name == name && registered != "" && registered != server:
			return fmt.Errorf("cluster %s is already registered with server %s, not %s: unregister it first ('flotilla cluster unregister %s') or pick another name", name, registered, server, name)
		case mc.Name != name && registered == server && ns == agentNamespace:
			return fmt.Errorf("server %s (namespace %s) is already registered as cluster %s: use that name, or another --agent-namespace", server, ns, mc.Name)
		}
	}
	return nil
}

// registeredServer is the server a MemberCluster's kubeconfig points at.
func registeredServer(ctx context.Context, hub *conn, mc *flotillav1.MemberCluster) string {
	secret := &corev1.Secret{}
	if err := hub.client.Get(ctx, client.ObjectKey{Namespace: hub.hubNamespace(ctx), Name: mc.Spec.KubeconfigSecretRef.Name}, secret); err == nil {
		key := mc.Spec.KubeconfigSecretRef.Key
		if key == "" {
			key = kubeconfigKey
		}
		if cfg, err := clientcmd.Load(secret.Data[key]); err == nil {
			if c, ok := cfg.Contexts[cfg.CurrentContext]; ok && cfg.Clusters[c.Cluster] != nil {
				return strings.TrimSuffix(cfg.Clusters[c.Cluster].Server, "/")
			}
		}
	}
	return mc.Status.Server
}

// hubToken is a new token for the hub, in a kubeconfig.
type hubToken = enroll.HubToken

// issueHubToken binds a new token of the hub's ServiceAccount to a new
// Secret (deleting that Secret revokes the token), checks that it works, and
// returns a kubeconfig for it plus the previous binding Secrets.
func (o *registerOptions) issueHubToken(ctx context.Context, spoke *conn, server string) (*hubToken, error) {
	// The token must work, with exactly the hub's rights, before the hub
	// gets it; with --server (an address the hub uses) it is checked at the
	// address this command reaches the cluster at.
	t, err := enroll.IssueHubToken(ctx, spoke.config, spoke.client, enroll.TokenRequest{Namespace: o.agentNamespace, Server: server, CheckServer: spoke.config.Host, TTL: o.tokenTTL})
	if err != nil {
		return nil, fmt.Errorf("on %s: %w", spoke.what, err)
	}
	return t, nil
}

// waitClusterReady waits for the hub's Ready condition, printing changes.
func waitClusterReady(ctx context.Context, hub *conn, name string, timeout time.Duration, s Streams) error {
	last := ""
	err := wait.PollUntilContextTimeout(ctx, 500*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		mc := &flotillav1.MemberCluster{}
		if err := hub.client.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		c := apimeta.FindStatusCondition(mc.Status.Conditions, flotillav1.ConditionReady)
		msg := "  waiting for the hub to probe the cluster"
		if c != nil {
			msg = fmt.Sprintf("  Ready=%s %s: %s", c.Status, c.Reason, c.Message)
		}
		if msg != last {
			fmt.Fprintln(s.ErrOut, msg)
			last = msg
		}
		return c != nil && c.Status == metav1.ConditionTrue, nil
	})
	if err != nil {
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("MemberCluster %s disappeared while waiting", name)
		}
		return fmt.Errorf("cluster %s is not Ready after %s (%s): is the hub running? check 'kubectl -n %s get deploy flotilla-hub' and 'kubectl describe membercluster %s'",
			name, timeout, strings.TrimSpace(last), hub.hubNamespace(ctx), name)
	}
	return nil
}

// revokePrevious deletes the Secrets binding the previous hub tokens, but
// only once the hub uses the new one (the kubeconfig Secret at
// secretVersion): no window in which its pooled client holds a revoked
// token. If the hub does not switch in time, they stay, with a warning.
func (o *registerOptions) revokePrevious(ctx context.Context, s Streams, hub, spoke *conn, name, secretVersion string, previous []corev1.Secret) error {
	if len(previous) == 0 {
		return nil
	}
	if !waitCredentials(ctx, hub, name, secretVersion, o.timeout, s) {
		fmt.Fprintf(s.ErrOut, "  Warning: the hub has not switched to the new token within %s (is it running?); the previous tokens stay valid: "+
			"re-run this command to retry, or delete the Secrets labelled %s on cluster %s yourself\n", o.timeout, flotillav1.LabelHubToken, name)
		return nil
	}
	for i := range previous {
		if err := client.IgnoreNotFound(spoke.client.Delete(ctx, &previous[i])); err != nil {
			return fmt.Errorf("revoke the previous hub token (Secret %s/%s on cluster %s): %w", previous[i].Namespace, previous[i].Name, name, err)
		}
		fmt.Fprintf(s.ErrOut, "  revoked the previous hub token (Secret %s)\n", previous[i].Name)
	}
	return nil
}

// waitCredentials waits until the hub reaches cluster name with the
// kubeconfig Secret at version (MemberCluster status.credentialsVersion).
func waitCredentials(ctx context.Context, hub *conn, name, version string, timeout time.Duration, s Streams) bool {
	fmt.Fprintf(s.ErrOut, "  waiting for the hub to switch to the new token before revoking the previous one\n")
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, timeout, true, func(ctx context.Context) (bool, error) {
		mc := &flotillav1.MemberCluster{}
		if err := hub.client.Get(ctx, client.ObjectKey{Name: name}, mc); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		return mc.Status.CredentialsVersion == version, nil
	})
	return err == nil
}
