package charts_test

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// TestAgentRBACIsEnough runs the agent under the chart's namespaced RBAC
// (rendered by Helm's engine, applied to a real apiserver): it deploys
// into its listed namespace, and the apiserver refuses what lies outside.
func TestAgentRBACIsEnough(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	c := env.Client
	for _, ns := range []string{flotillav1.SystemNamespace, "team-a"} {
		require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	}
	r, err := charts.Render(charts.Agent, flotillav1.SystemNamespace, map[string]any{"rbac": map[string]any{"scope": "namespaces", "namespaces": []any{"team-a"}}})
	require.NoError(t, err)
	for _, u := range r.Objects {
		if u.GetKind() == "Deployment" || u.GetKind() == "CustomResourceDefinition" {
			continue
		}
		require.NoError(t, c.Create(ctx, u), "apply %s %s", u.GetKind(), u.GetName())
	}
	// The ServiceAccount's identity, as the apiserver sees it.
	kubeconfig := env.UserKubeconfig(t, "system:serviceaccount:flotilla-system:flotilla-agent", "system:serviceaccounts", "system:serviceaccounts:flotilla-system")
	cfg, err := clientcmd.RESTConfigFromKubeConfig(kubeconfig)
	require.NoError(t, err)

	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev := repo.MustCommit(t, map[string]string{
		"ok/cm.yaml":      "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: allowed}\ndata: {k: v}\n",
		"outside/cr.yaml": "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {name: escalate}\nrules: []\n",
	}, "apps")

	scheme, err := agent.Scheme()
	require.NoError(t, err)
	opts := agent.ManagerOptions(flotillav1.SystemNamespace, scheme)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	mgr, err := ctrl.NewManager(cfg, opts)
	require.NoError(t, err)
	require.NoError(t, agent.Setup(mgr, agent.Options{GitCacheDir: filepath.Join(t.TempDir(), "git"), Identity: "rbac-test", Version: "test", AllowLoopbackRepos: true,
		WatchNamespaces: []string{"team-a"}, HealthInterval: 300 * time.Millisecond}))
	mctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- mgr.Start(mctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("manager: %v", err)
		}
	})

	for name, path := range map[string]string{"ok": "ok", "outside": "outside"} {
		require.NoError(t, c.Create(ctx, &flotillav1.Application{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: flotillav1.SystemNamespace},
			Spec: flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: repo.URL, Path: path},
				Destination: flotillav1.ApplicationDestination{Cluster: "self", Namespace: "team-a"},
				SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true, SelfHeal: true}}},
		}))
	}
	wait := func(name, reason string) *flotillav1.Application {
		app := &flotillav1.Application{}
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: name}, app))
			if s := apimeta.FindStatusCondition(app.Status.Conditions, flotillav1.ConditionSynced); s != nil && s.Reason == reason {
				return app
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("%s never reached %s: %+v", name, reason, app.Status)
		return nil
	}
	okApp := wait("ok", "Synced")
	require.Equal(t, rev, okApp.Status.Sync.Revision)
	require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "team-a", Name: "allowed"}, &corev1.ConfigMap{}))
	out := wait("outside", "ApplyFailed")
	require.Contains(t, out.Status.LastSyncError, "forbidden")
}
