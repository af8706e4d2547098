package hub_test

import (
	"fmt"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

const ns = flotillav1.SystemNamespace

var logOnce sync.Once

// fleetEnv is a hub apiserver and spoke apiservers, with the hub's
// least-privilege identity on each spoke.
type fleetEnv struct {
	hub     *testenv.Env
	spokes  map[string]*testenv.Env
	pool    *spokes.Pool // of the last hub started
	running *hub.Hub     // the last hub started
}

func startFleet(t testing.TB, spokeNames ...string) *fleetEnv {
	t.Helper()
	return startFleetWith(t, nil, spokeNames...)
}

// startFleetWith starts the hub apiserver with extra options (for example
// Cluster API's CRD); spokes are not registered when hubOpts is set.
func startFleetWith(t testing.TB, hubOpts []testenv.Option, spokeNames ...string) *fleetEnv {
	t.Helper()
	f := &fleetEnv{spokes: map[string]*testenv.Env{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, name := range append([]string{"hub"}, spokeNames...) {
		wg.Go(func() {
			var opts []testenv.Option
			if name == "hub" {
				opts = hubOpts
			}
			env := testenv.Start(t, opts...)
			mu.Lock()
			defer mu.Unlock()
			if name == "hub" {
				f.hub = env
			} else {
				f.spokes[name] = env
			}
		})
	}
	wg.Wait()
	require.NoError(t, f.hub.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	if hubOpts == nil {
		for name, spoke := range f.spokes {
			f.register(t, name, spoke, map[string]string{"env": "prod", "name": name})
		}
	}
	return f
}

// register does what `flotilla cluster register` will: a namespace, a Role
// for the hub's identity on the spoke, the kubeconfig Secret and the
// MemberCluster on the hub.
func (f *fleetEnv) register(t testing.TB, name string, spoke *testenv.Env, labels map[string]string) {
	t.Helper()
	f.registerIn(t, name, spoke, ns, spoke.UserKubeconfig(t, "flotilla-hub"), labels)
}

// registerIn registers a MemberCluster whose agent namespace is agentNS on
// the spoke, so that several MemberClusters can share one apiserver.
func (f *fleetEnv) registerIn(t testing.TB, name string, spoke *testenv.Env, agentNS string, kubeconfig []byte, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, client.IgnoreAlreadyExists(spoke.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: agentNS}})))
	role, binding := spokes.HubRBAC(agentNS, rbacv1.Subject{Kind: "User", Name: "flotilla-hub", APIGroup: "rbac.authorization.k8s.io"})
	require.NoError(t, client.IgnoreAlreadyExists(spoke.Client.Create(ctx, role)))
	require.NoError(t, client.IgnoreAlreadyExists(spoke.Client.Create(ctx, binding)))
	f.addClusterIn(t, name, agentNS, kubeconfig, labels)
}

func (f *fleetEnv) addCluster(t testing.TB, name string, kubeconfig []byte, labels map[string]string) {
	t.Helper()
	f.addClusterIn(t, name, ns, kubeconfig, labels)
}

func (f *fleetEnv) addClusterIn(t testing.TB, name, agentNS string, kubeconfig []byte, labels map[string]string) {
	t.Helper()
	ctx := t.Context()
	require.NoError(t, f.hub.Client.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-kubeconfig", Namespace: ns},
		Data:       map[string][]byte{"value": kubeconfig},
	}))
	require.NoError(t, f.hub.Client.Create(ctx, &flotillav1.MemberCluster{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec:       flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: name + "-kubeconfig"}, AgentNamespace: agentNS},
	}))
}

// startHub runs the hub controllers in-process until the returned stop is called.
func (f *fleetEnv) startHub(t testing.TB, opts hub.Options) (stop func()) {
	t.Helper()
	logOnce.Do(func() { ctrllog.SetLogger(zap.New(zap.WriteTo(io.Discard))) })
	scheme, err := hub.Scheme()
	require.NoError(t, err)
	cfg := rest.CopyConfig(f.hub.Config)
	cfg.QPS = -1 // as ctrl.GetConfig does in flotilla-hub: leave the rate to the apiserver's priority and fairness
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  hub.CacheOptions(ns),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
		Logger:                 zap.New(zap.WriteTo(testWriter{t}), zap.UseDevMode(true)),
	})
	require.NoError(t, err)
	if opts.GitCacheDir == "" {
		opts.GitCacheDir = filepath.Join(t.TempDir(), "git")
	}
	opts.AllowLoopbackRepos = true // test Git servers listen on 127.0.0.1
	if opts.ProbeInterval == 0 {
		opts.ProbeInterval = time.Second
	}
	if opts.ClientLimits.Timeout == 0 {
		opts.ClientLimits = kubeconfig.Limits{Timeout: 3 * time.Second, QPS: 200, Burst: 400}
	}
	f.running, err = hub.Setup(mgr, opts)
	require.NoError(t, err)
	f.pool = f.running.Pool
	return testenv.RunManager(t, mgr)
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	if testing.Verbose() {
		w.t.Log(string(p))
	}
	return len(p), nil
}

var blackhole = testenv.Blackhole

func kubeconfigFor(server string) []byte {
	return []byte(fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://%s", insecure-skip-tls-verify: true}}]
users: [{name: u, user: {token: super-secret-token-value}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`, server))
}

var eventually = testenv.Eventually

func appSet(name string, elements ...string) *flotillav1.ApplicationSet {
	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
	list := "["
	for i, e := range elements {
		if i > 0 {
			list += ","
		}
		list += fmt.Sprintf("{app: %s}", e)
	}
	list += "]"
	doc := fmt.Sprintf(`[{matrix: {generators: [{clusters: {selector: {matchLabels: {env: prod}}}}, {list: {elements: %s}}]}}]`, list)
	if err := yaml.Unmarshal([]byte(doc), &set.Spec.Generators); err != nil {
		panic(err)
	}
	set.Spec.Template = flotillav1.ApplicationTemplate{
		Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .name }}-{{ .app }}"},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: "https://git.example/deploy.git", TargetRevision: "main", Path: "apps/{{ .app }}"},
			Destination: flotillav1.ApplicationDestination{Cluster: "{{ .name }}", Namespace: "{{ .app }}"},
		},
	}
	return set
}

func hubApps(t testing.TB, c client.Client, set string) map[string]flotillav1.Application {
	t.Helper()
	var list flotillav1.ApplicationList
	require.NoError(t, c.List(t.Context(), &list, client.InNamespace("default"), client.MatchingLabels{flotillav1.LabelApplicationSet: set}))
	out := map[string]flotillav1.Application{}
	for _, a := range list.Items {
		out[a.Name] = a
	}
	return out
}

func spokeApps(t testing.TB, c client.Client) map[string]flotillav1.Application {
	t.Helper()
	var list flotillav1.ApplicationList
	require.NoError(t, c.List(t.Context(), &list, client.InNamespace(ns)))
	out := map[string]flotillav1.Application{}
	for _, a := range list.Items {
		out[a.Name] = a
	}
	return out
}

func condition(conds []metav1.Condition, t string) metav1.Condition {
	if c := apimeta.FindStatusCondition(conds, t); c != nil {
		return *c
	}
	return metav1.Condition{}
}

func key(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: "default", Name: name}
}

func updateSet(t testing.TB, c client.Client, name string, mutate func(*flotillav1.ApplicationSet)) {
	t.Helper()
	require.NoError(t, retry.RetryOnConflict(retry.DefaultRetry, func() error {
		set := &flotillav1.ApplicationSet{}
		if err := c.Get(t.Context(), key(name), set); err != nil {
			return err
		}
		mutate(set)
		return c.Update(t.Context(), set)
	}))
}
