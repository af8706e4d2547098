package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/pflag"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// kubeFlags are kubectl's connection flags.
type kubeFlags struct {
	kubeconfig, context string
}

func (k *kubeFlags) bind(fs *pflag.FlagSet, prefix, what string) {
	fs.StringVar(&k.kubeconfig, prefix+"kubeconfig", "", "path to the kubeconfig of "+what+" (default: $KUBECONFIG or ~/.kube/config)")
	fs.StringVar(&k.context, prefix+"context", "", "kubeconfig context of "+what+" (default: the current context)")
}

// conn is one resolved cluster connection.
type conn struct {
	what    string // "the hub", "cluster NAME": for messages
	context string
	config  *rest.Config
	client  client.Client
	hubNS   string // the hub's namespace, once read (hubNamespace)
}

// hubNamespace is the namespace the hub was installed into, as
// `flotilla install -n` recorded it on the MemberCluster CRD; the default
// flotilla-system when nothing is recorded (or it cannot be read).
func (c *conn) hubNamespace(ctx context.Context) string {
	if c.hubNS != "" {
		return c.hubNS
	}
	c.hubNS = flotillav1.SystemNamespace
	crd := &apiextensionsv1.CustomResourceDefinition{}
	if err := c.client.Get(ctx, client.ObjectKey{Name: "memberclusters." + flotillav1.GroupVersion.Group}, crd); err == nil {
		if ns := crd.Annotations[flotillav1.AnnotationHubNamespaceOfHub]; ns != "" {
			c.hubNS = ns
		}
	}
	return c.hubNS
}

// rawConfig loads the kubeconfig the flags name, refusing a missing context
// with the list of the ones that exist.
func (k kubeFlags) rawConfig() (clientcmdapi.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k.kubeconfig != "" {
		if _, err := os.Stat(k.kubeconfig); err != nil {
			return clientcmdapi.Config{}, fmt.Errorf("kubeconfig %s: %w", k.kubeconfig, err)
		}
		rules.ExplicitPath = k.kubeconfig
	}
	raw, err := rules.Load()
	if err != nil {
		return clientcmdapi.Config{}, fmt.Errorf("load kubeconfig: %w", err)
	}
	return *raw, nil
}

func (k kubeFlags) source() string {
	if k.kubeconfig != "" {
		return k.kubeconfig
	}
	if env := os.Getenv("KUBECONFIG"); env != "" {
		return env
	}
	return "~/.kube/config"
}

// connect resolves the flags into a client, checking that the context
// exists and that the apiserver answers.
func (k kubeFlags) connect(ctx context.Context, what string, scheme *runtime.Scheme) (*conn, error) {
	raw, err := k.rawConfig()
	if err != nil {
		return nil, err
	}
	name := k.context
	if name == "" {
		name = raw.CurrentContext
	}
	if name == "" {
		return nil, fmt.Errorf("no context for %s: %s has no current context; pass --context (see 'kubectl config get-contexts')", what, k.source())
	}
	if _, ok := raw.Contexts[name]; !ok {
		return nil, fmt.Errorf("context %q for %s does not exist in %s; pick one of: %s", name, what, k.source(), strings.Join(contextNames(raw), ", "))
	}
	cfg, err := clientcmd.NewNonInteractiveClientConfig(raw, name, &clientcmd.ConfigOverrides{}, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig context %q for %s: %w", name, what, err)
	}
	cfg.QPS, cfg.Burst = 50, 100
	cfg.Host = strings.TrimSuffix(cfg.Host, "/")
	if err := reachable(ctx, cfg, what); err != nil {
		return nil, err
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("client for %s: %w", what, err)
	}
	return &conn{what: what, context: name, config: cfg, client: c}, nil
}

func contextNames(raw clientcmdapi.Config) []string {
	var names []string
	for n := range raw.Contexts {
		names = append(names, n)
	}
	if len(names) == 0 {
		return []string{"(none)"}
	}
	sort.Strings(names)
	return names
}

// reachable asks the apiserver for its version with a short timeout.
func reachable(ctx context.Context, cfg *rest.Config, what string) error {
	c := rest.CopyConfig(cfg)
	c.Timeout = 10 * time.Second
	dc, err := discovery.NewDiscoveryClientForConfig(c)
	if err != nil {
		return fmt.Errorf("client for %s: %w", what, err)
	}
	done := make(chan error, 1)
	go func() { _, err := dc.ServerVersion(); done <- err }()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case err = <-done:
	}
	if err == nil {
		return nil
	}
	var uerr *url.Error
	var nerr net.Error
	switch {
	case apierrors.IsUnauthorized(err) || apierrors.IsForbidden(err):
		return fmt.Errorf("%s at %s refused our credentials (%v): refresh the kubeconfig's credentials", what, cfg.Host, short(err))
	case errors.As(err, &uerr) || errors.As(err, &nerr):
		return fmt.Errorf("cannot reach %s at %s: %v; check that it is running and that --kubeconfig/--context point at it", what, cfg.Host, short(err))
	default:
		return fmt.Errorf("cannot reach %s at %s: %v", what, cfg.Host, short(err))
	}
}

func short(err error) string {
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i > 0 && strings.Contains(s, "dial tcp") {
		return s[i+2:]
	}
	return s
}

// cliScheme knows every kind the CLI reads or writes.
func cliScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{corev1.AddToScheme, appsv1.AddToScheme, rbacv1.AddToScheme, apiextensionsv1.AddToScheme, flotillav1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// requireHub explains a hub without Flotilla.
func requireHub(ctx context.Context, hub *conn) error {
	err := hub.client.List(ctx, &flotillav1.MemberClusterList{}, client.Limit(1))
	switch {
	case apimeta.IsNoMatchError(err) || apierrors.IsNotFound(err):
		return fmt.Errorf("flotilla is not installed on the hub (context %q): run 'flotilla install' first", hub.context)
	case err != nil:
		return fmt.Errorf("read MemberClusters on the hub (context %q): %w", hub.context, err)
	}
	return nil
}

func objMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}

// notFoundHint turns a NotFound into what to run next.
func notFoundHint(err error, what, name, list string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("%s %q not found: see '%s'", what, name, list)
	}
	return fmt.Errorf("get %s %s: %w", what, name, err)
}
