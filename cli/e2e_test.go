package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

var logOnce sync.Once

// run runs the CLI as a user would and returns stdout, stderr and the exit code.
func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(t.Context(), args, strings.NewReader(""), &out, &errOut)
	return out.String(), errOut.String(), code
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := run(t, args...)
	require.Equal(t, 0, code, "flotilla %s failed:\nstdout: %s\nstderr: %s", strings.Join(args, " "), out, errOut)
	return out
}

// mustFail runs a command that must fail with a one-line error naming want.
func mustFail(t *testing.T, want string, args ...string) {
	t.Helper()
	out, errOut, code := run(t, args...)
	require.Equal(t, 1, code, "flotilla %s should fail; stdout: %s", strings.Join(args, " "), out)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	last := lines[len(lines)-1]
	require.True(t, strings.HasPrefix(last, "error: "), "error line: %q", last)
	require.Contains(t, last, want)
}

// mergeKubeconfigs writes one kubeconfig with a context per env (current:
// the first), plus contexts pointing at servers nobody listens on.
func mergeKubeconfigs(t *testing.T, envs map[string]*testenv.Env, current string, dead map[string]string) string {
	t.Helper()
	merged := clientcmdapi.NewConfig()
	for name, env := range envs {
		cfg, err := clientcmd.LoadFromFile(env.Kubeconfig(t))
		require.NoError(t, err)
		ctx := cfg.Contexts[cfg.CurrentContext]
		merged.Clusters[name] = cfg.Clusters[ctx.Cluster]
		merged.AuthInfos[name] = cfg.AuthInfos[ctx.AuthInfo]
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	for name, addr := range dead {
		merged.Clusters[name] = &clientcmdapi.Cluster{Server: "https://" + addr, InsecureSkipTLSVerify: true}
		merged.AuthInfos[name] = &clientcmdapi.AuthInfo{Token: "x"}
		merged.Contexts[name] = &clientcmdapi.Context{Cluster: name, AuthInfo: name}
	}
	merged.CurrentContext = current
	path := filepath.Join(t.TempDir(), "kubeconfig")
	require.NoError(t, clientcmd.WriteToFile(*merged, path))
	return path
}

func quietLogs() {
	logOnce.Do(func() {
		w := io.Discard
		if testing.Verbose() {
			w = os.Stderr
		}
		ctrllog.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(true)))
	})
}

// startHubProcess runs the hub controllers against the hub apiserver, as
// the flotilla-hub Deployment would (its image cannot run here: kwok only
// fakes the pod).
func startHubProcess(t *testing.T, cfg *rest.Config, namespace string) {
	quietLogs()
	scheme, err := hub.Scheme()
	require.NoError(t, err)
	c := rest.CopyConfig(cfg)
	c.QPS = -1
	mgr, err := ctrl.NewManager(c, ctrl.Options{Scheme: scheme, Cache: hub.CacheOptions(namespace),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0", Controller: config.Controller{SkipNameValidation: ptr.To(true)}})
	require.NoError(t, err)
	_, err = hub.Setup(mgr, hub.Options{Namespace: namespace, GitCacheDir: filepath.Join(t.TempDir(), "git"), GitTimeout: 3 * time.Second, ProbeInterval: time.Second, AllowLoopbackRepos: true,
		ClientLimits: kubeconfig.Limits{Timeout: 3 * time.Second, QPS: 200, Burst: 400}})
	require.NoError(t, err)
	testenv.RunManager(t, mgr)
}

// startAgentProcess runs the agent as `flotilla-agent` in local mode would.
func startAgentProcess(t *testing.T, cfg *rest.Config) (stop func()) {
	quietLogs()
	scheme, err := agent.Scheme()
	require.NoError(t, err)
	opts := agent.ManagerOptions(flotillav1.SystemNamespace, scheme)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(rest.CopyConfig(cfg), opts)
	require.NoError(t, err)
	require.NoError(t, agent.Setup(mgr, agent.Options{Namespace: flotillav1.SystemNamespace, GitCacheDir: filepath.Join(t.TempDir(), "git"), GitTimeout: 3 * time.Second, AllowLoopbackRepos: true,
		SyncInterval: time.Minute, HealthInterval: 300 * time.Millisecond, Identity: "cli-test-agent", Version: "v-test", HeartbeatEvery: time.Second}))
	return testenv.RunManager(t, mgr)
}

const appSetYAML = `apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: guestbook, namespace: default}
spec:
  generators:
  - clusters: {selector: {matchLabels: {env: dev}}}
  template:
    metadata: {name: '{{ .name }}-guestbook'}
    spec:
      source: {repoURL: %q, targetRevision: main, path: %s}
      destination: {cluster: '{{ .name }}', namespace: guestbook}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

// TestInstallRegisterStatusUnregister walks a user's path on real
// apiservers: install the hub, register a spoke, deploy, watch status,
// diff, label, rotate the token, unregister and uninstall — with the bad
// inputs of each step refused before anything is written.
func TestInstallRegisterStatusUnregister(t *testing.T) {
	hubEnv := testenv.Start(t, testenv.WithoutFlotillaCRDs())
	hubEnv.StartWorkloads(t) // the hub Deployment becomes Available (kwok)
	spokeEnv := testenv.Start(t, testenv.WithoutFlotillaCRDs())
	spokeEnv.StartWorkloads(t) // namespaces really go away; an agent Deployment becomes Available
	kc := mergeKubeconfigs(t, map[string]*testenv.Env{"hub": hubEnv, "spoke": spokeEnv}, "hub", map[string]string{"gone": testenv.FreeAddr(t)})
	ctx := t.Context()
	hc, sc := hubEnv.Client, spokeEnv.Client
	hubServer, spokeServer := strings.TrimSuffix(hubEnv.Config.Host, "/"), strings.TrimSuffix(spokeEnv.Config.Host, "/")
	// Not the default namespace: install records it, and every later
	// command (register, unregister, version, uninstall) finds it there.
	const hubNS = "fleet-hub"

	t.Run("before install", func(t *testing.T) {
		mustFail(t, "flotilla is not installed on the hub", "cluster", "list", "--kubeconfig", kc)
		mustFail(t, `context "nope" for the hub does not exist`, "install", "--kubeconfig", kc, "--context", "nope")
		mustFail(t, "cannot reach the hub", "install", "--kubeconfig", kc, "--context", "gone")
	})

	t.Run("install", func(t *testing.T) {
		dry := mustRun(t, "install", "--dry-run", "-o", "yaml", "--image", "registry.local:5000/flotilla-hub:v9")
		require.Contains(t, dry, "image: registry.local:5000/flotilla-hub:v9")
		// Nothing applied by a dry run.
		err := hc.Get(ctx, types.NamespacedName{Name: hubNS}, &corev1.Namespace{})
		require.True(t, apierrors.IsNotFound(err), "dry run created the namespace: %v", err)

		out := mustRun(t, "install", "--kubeconfig", kc, "-n", hubNS, "--image", "registry.local:5000/flotilla-hub:v9", "--timeout", "2m")
		require.Contains(t, out, "The Flotilla hub is installed.")
		require.Contains(t, out, "flotilla cluster register") // NOTES
		d := &appsv1.Deployment{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: hubNS, Name: "flotilla-hub"}, d))
		require.Equal(t, int32(1), d.Status.AvailableReplicas)
		for _, crd := range []string{"memberclusters.flotilla.dev", "applicationsets.flotilla.dev", "applications.flotilla.dev"} {
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: crd}, &apiextensionsv1.CustomResourceDefinition{}))
		}
		// Idempotent: a second run changes nothing.
		before := d.Generation
		mustRun(t, "install", "--kubeconfig", kc, "--image", "registry.local:5000/flotilla-hub:v9", "--timeout", "2m")
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: hubNS, Name: "flotilla-hub"}, d))
		require.Equal(t, before, d.Generation)
		require.Contains(t, mustRun(t, "version", "--kubeconfig", kc), "Hub Version: v9")
		mustFail(t, "the hub is installed in namespace fleet-hub", "install", "--kubeconfig", kc, "-n", "elsewhere")
	})

	startHubProcess(t, hubEnv.Config, hubNS)

	t.Run("register refuses bad input and creates nothing", func(t *testing.T) {
		mustFail(t, `invalid label value "not ok"`, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "spoke", "--labels", "env=not ok")
		mustFail(t, `invalid label key "-bad"`, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "spoke", "--labels", "-bad=x")
		mustFail(t, "labels are key=value pairs", "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "spoke", "--labels", "env")
		mustFail(t, `invalid cluster name "Spoke_1"`, "cluster", "register", "Spoke_1", "--kubeconfig", kc, "--context", "spoke")
		mustFail(t, `context "nope" for cluster spoke does not exist`, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "nope")
		mustFail(t, "cannot reach cluster spoke", "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "gone")
		mustFail(t, "--context is required", "cluster", "register", "spoke", "--kubeconfig", kc)
		err := sc.Get(ctx, types.NamespacedName{Name: flotillav1.SystemNamespace}, &corev1.Namespace{})
		require.True(t, apierrors.IsNotFound(err), "a refused register touched the spoke: %v", err)
		mcs := &flotillav1.MemberClusterList{}
		require.NoError(t, hc.List(ctx, mcs))
		require.Empty(t, mcs.Items)
	})

	var firstToken string
	t.Run("register", func(t *testing.T) {
		out := mustRun(t, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "spoke", "--labels", "env=dev,region=eu", "--agent-mode", "local", "--timeout", "1m")
		require.Contains(t, out, "Cluster spoke is registered.")
		require.Contains(t, out, "flotilla-agent --kubeconfig")
		mc := &flotillav1.MemberCluster{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "spoke"}, mc))
		require.Equal(t, map[string]string{"env": "dev", "region": "eu"}, mc.Labels)
		require.Equal(t, spokeServer, mc.Status.Server)
		// Local mode: no agent Deployment, but its RBAC and the CRD.
		err := sc.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: "flotilla-agent"}, &appsv1.Deployment{})
		require.True(t, apierrors.IsNotFound(err))
		require.NoError(t, sc.Get(ctx, types.NamespacedName{Name: "applications.flotilla.dev"}, &apiextensionsv1.CustomResourceDefinition{}))
		firstToken = hubTokenSecret(t, sc)
		// The hub's kubeconfig holds a token, never the user's admin credentials.
		secret := &corev1.Secret{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: hubNS, Name: "cluster-spoke-kubeconfig"}, secret))
		hubCfg, err := clientcmd.Load(secret.Data["value"])
		require.NoError(t, err)
		for _, u := range hubCfg.AuthInfos {
			require.NotEmpty(t, u.Token)
			require.Empty(t, u.ClientKeyData)
		}
	})

	t.Run("register twice: other server refused, same server rotates the token", func(t *testing.T) {
		mustFail(t, "cluster spoke is already registered with server "+spokeServer, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "hub", "--agent-mode", "local")
		mustFail(t, "is already registered as cluster spoke", "cluster", "register", "spoke-again", "--kubeconfig", kc, "--context", "spoke", "--agent-mode", "local")
		mustRun(t, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "spoke", "--labels", "env=dev,region=eu", "--agent-mode", "local", "--timeout", "1m")
		second := hubTokenSecret(t, sc)
		require.NotEqual(t, firstToken, second, "the token was not rotated")
		// The old token was revoked only once the hub used the new one.
		secret := &corev1.Secret{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: hubNS, Name: "cluster-spoke-kubeconfig"}, secret))
		mc := &flotillav1.MemberCluster{}
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "spoke"}, mc))
		require.Equal(t, secret.ResourceVersion, mc.Status.CredentialsVersion, "the hub probed with the new Secret before the old token went")
		// The token's real expiry is recorded and reported.
		expires, err := time.Parse(time.RFC3339, secret.Annotations[flotillav1.AnnotationTokenExpires])
		require.NoError(t, err)
		require.WithinDuration(t, time.Now().Add(365*24*time.Hour), expires, time.Hour)
		testenv.Eventually(t, 20*time.Second, "expiry on the MemberCluster", func() (bool, string) {
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "spoke"}, mc))
			return mc.Status.CredentialsExpireTime != nil && mc.Status.CredentialsExpireTime.Time.Equal(expires), fmt.Sprint(mc.Status.CredentialsExpireTime)
		})
		testenv.Eventually(t, 20*time.Second, "spoke stays Ready with the new token", func() (bool, string) {
			mc := &flotillav1.MemberCluster{}
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "spoke"}, mc))
			return conditionWord(mc.Status.Conditions, flotillav1.ConditionReady) == "True", fmt.Sprint(mc.Status.Conditions)
		})
	})

	startAgentProcess(t, spokeEnv.Config)
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev := repo.MustCommit(t, map[string]string{"guestbook/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: guestbook}\ndata: {color: blue}\n"}, "guestbook")
	setFile := filepath.Join(t.TempDir(), "guestbook.yaml")
	require.NoError(t, os.WriteFile(setFile, fmt.Appendf(nil, appSetYAML, repo.URL, "guestbook"), 0o600))

	t.Run("diff before apply, then status", func(t *testing.T) {
		out := mustRun(t, "diff", "-f", setFile, "--kubeconfig", kc)
		require.Contains(t, out, "+ Application default/spoke-guestbook (create)")
		require.Contains(t, out, "1 to create, 0 to update, 0 to delete")

		_, err := hubEnv.Kubectl(t, "apply", "-f", setFile)
		require.NoError(t, err)
		testenv.Eventually(t, 60*time.Second, "guestbook Healthy on spoke", func() (bool, string) {
			out, _, code := run(t, "status", "--kubeconfig", kc, "-o", "json")
			if code != 0 {
				return false, out
			}
			var fs FleetStatus
			require.NoError(t, json.Unmarshal([]byte(out), &fs))
			return len(fs.ApplicationSets) == 1 && fs.ApplicationSets[0].Healthy == 1 && fs.ApplicationSets[0].Rollout != nil && fs.ApplicationSets[0].Rollout.Revision == rev, out
		})
		out = mustRun(t, "status", "--kubeconfig", kc)
		require.Contains(t, out, "1/1 on "+rev[:7])
		require.Regexp(t, `default\s+guestbook\s+1\s+1/1\s+1/1\s+0\s+0`, out)
		out = mustRun(t, "status", "guestbook", "--kubeconfig", kc)
		require.Regexp(t, `spoke\s+spoke-guestbook\s+Synced\s+Healthy\s+`+rev[:7], out)
		require.NoError(t, sc.Get(ctx, types.NamespacedName{Namespace: "guestbook", Name: "guestbook"}, &corev1.ConfigMap{}))
		mustFail(t, `ApplicationSet "default/nope" not found`, "status", "nope", "--kubeconfig", kc)

		// A changed path shows as an update; an unchanged set as nothing.
		require.Contains(t, mustRun(t, "diff", "-f", setFile, "--kubeconfig", kc), "0 to create, 0 to update, 0 to delete")
		changed := filepath.Join(t.TempDir(), "changed.yaml")
		require.NoError(t, os.WriteFile(changed, fmt.Appendf(nil, appSetYAML, repo.URL, "guestbook-v2"), 0o600))
		out = mustRun(t, "diff", "-f", changed, "--kubeconfig", kc)
		require.Contains(t, out, "~ Application default/spoke-guestbook (update)")
		require.Contains(t, out, "+    path: guestbook-v2")
	})

	t.Run("list and label", func(t *testing.T) {
		testenv.Eventually(t, 30*time.Second, "cluster list shows the agent and one healthy app", func() (bool, string) {
			out := mustRun(t, "cluster", "list", "--kubeconfig", kc)
			return regexp.MustCompile(`spoke\s+True\s+Ready\s+v1\.37\.2\s+1\s+1\s+`).MatchString(out), out
		})
		out := mustRun(t, "cluster", "list", "--kubeconfig", kc, "-o", "json")
		var list struct{ Items []flotillav1.MemberCluster }
		require.NoError(t, json.Unmarshal([]byte(out), &list))
		require.Len(t, list.Items, 1)
		require.Equal(t, "v-test", list.Items[0].Status.AgentVersion)
		mustFail(t, "already has label env=dev: pass --overwrite", "cluster", "label", "spoke", "env=prod", "--kubeconfig", kc)
		mustFail(t, "invalid label value", "cluster", "label", "spoke", "tier=a b", "--kubeconfig", kc)
		mustFail(t, `cluster "nope" not found`, "cluster", "label", "nope", "tier=gold", "--kubeconfig", kc)
		require.Contains(t, mustRun(t, "cluster", "label", "spoke", "tier=gold", "region-", "--kubeconfig", kc), "env=dev,tier=gold")
	})

	t.Run("unregister keeps workloads", func(t *testing.T) {
		mustFail(t, "points at "+hubServer, "cluster", "unregister", "spoke", "--kubeconfig", kc, "--context", "hub")
		out := mustRun(t, "cluster", "unregister", "spoke", "--kubeconfig", kc, "--context", "spoke", "--timeout", "1m")
		require.Contains(t, out, "Cluster spoke is unregistered.")
		err := hc.Get(ctx, types.NamespacedName{Name: "spoke"}, &flotillav1.MemberCluster{})
		require.True(t, apierrors.IsNotFound(err))
		err = hc.Get(ctx, types.NamespacedName{Namespace: hubNS, Name: "cluster-spoke-kubeconfig"}, &corev1.Secret{})
		require.True(t, apierrors.IsNotFound(err))
		// The workload stays; the agent's Applications and CRD are gone.
		require.NoError(t, sc.Get(ctx, types.NamespacedName{Namespace: "guestbook", Name: "guestbook"}, &corev1.ConfigMap{}))
		testenv.Eventually(t, 30*time.Second, "Application CRD removed from the spoke", func() (bool, string) {
			err := sc.Get(ctx, types.NamespacedName{Name: "applications.flotilla.dev"}, &apiextensionsv1.CustomResourceDefinition{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		// The hub's Application for the gone cluster is removed, not stuck.
		testenv.Eventually(t, 30*time.Second, "hub Applications of spoke removed", func() (bool, string) {
			apps := &flotillav1.ApplicationList{}
			require.NoError(t, hc.List(ctx, apps, client.InNamespace("default")))
			return len(apps.Items) == 0, fmt.Sprint(len(apps.Items))
		})
	})

	t.Run("re-register with an agent Deployment, then unregister deleting workloads", func(t *testing.T) {
		testenv.Eventually(t, 60*time.Second, "the old agent namespace is gone", func() (bool, string) {
			err := sc.Get(ctx, types.NamespacedName{Name: flotillav1.SystemNamespace}, &corev1.Namespace{})
			return apierrors.IsNotFound(err), fmt.Sprint(err)
		})
		out := mustRun(t, "cluster", "register", "spoke", "--kubeconfig", kc, "--context", "spoke", "--labels", "env=dev",
			"--agent-image", "registry.local:5000/flotilla-agent:v9", "--timeout", "1m")
		require.NotContains(t, out, "flotilla-agent --kubeconfig")
		d := &appsv1.Deployment{}
		require.NoError(t, sc.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: "flotilla-agent"}, d))
		require.Equal(t, "registry.local:5000/flotilla-agent:v9", d.Spec.Template.Spec.Containers[0].Image)
		testenv.Eventually(t, 60*time.Second, "guestbook Healthy again", func() (bool, string) {
			out, _, _ := run(t, "status", "guestbook", "--kubeconfig", kc)
			return regexp.MustCompile(`spoke-guestbook\s+Synced\s+Healthy`).MatchString(out), out
		})
		out = mustRun(t, "cluster", "unregister", "spoke", "--kubeconfig", kc, "--context", "spoke", "--delete-workloads", "--timeout", "1m")
		require.Contains(t, out, "Cluster spoke is unregistered.")
		err := sc.Get(ctx, types.NamespacedName{Namespace: "guestbook", Name: "guestbook"}, &corev1.ConfigMap{})
		require.True(t, apierrors.IsNotFound(err), "the workload was kept: %v", err)
	})

	t.Run("uninstall keeps user objects", func(t *testing.T) {
		out := mustRun(t, "uninstall", "--kubeconfig", kc)
		require.Contains(t, out, "are kept")
		err := hc.Get(ctx, types.NamespacedName{Namespace: hubNS, Name: "flotilla-hub"}, &appsv1.Deployment{})
		require.True(t, apierrors.IsNotFound(err))
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Namespace: "default", Name: "guestbook"}, &flotillav1.ApplicationSet{}))
		require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "memberclusters.flotilla.dev"}, &apiextensionsv1.CustomResourceDefinition{}))
	})
}

func hubTokenSecret(t *testing.T, c client.Client) string {
	t.Helper()
	list := &corev1.SecretList{}
	require.NoError(t, c.List(t.Context(), list, client.InNamespace(flotillav1.SystemNamespace), client.HasLabels{flotillav1.LabelHubToken}))
	require.Len(t, list.Items, 1, "exactly one live hub token")
	return list.Items[0].Name
}
