package agent_test

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

const ns = flotillav1.SystemNamespace

var logOnce sync.Once

func startAgent(t testing.TB, env *testenv.Env, gitDir string, tweaks ...func(*agent.Options)) (stop func()) {
	t.Helper()
	cfg := *env.Config
	return startAgentAs(t, &cfg, gitDir, tweaks...)
}

// startAgentAs runs the agent with cfg's identity.
func startAgentAs(t testing.TB, cfg *rest.Config, gitDir string, tweaks ...func(*agent.Options)) (stop func()) {
	t.Helper()
	logOnce.Do(func() {
		w := io.Discard
		if testing.Verbose() {
			w = os.Stderr
		}
		ctrllog.SetLogger(zap.New(zap.WriteTo(w), zap.UseDevMode(true)))
	})
	scheme, err := agent.Scheme()
	require.NoError(t, err)
	opts := agent.ManagerOptions(ns, scheme)
	opts.Metrics = metricsserver.Options{BindAddress: "0"}
	opts.HealthProbeBindAddress = "0"
	opts.Controller = config.Controller{SkipNameValidation: ptr.To(true)}
	cfg.QPS = -1
	mgr, err := ctrl.NewManager(cfg, opts)
	require.NoError(t, err)
	o := agent.Options{Namespace: ns, GitCacheDir: gitDir, GitTimeout: 3 * time.Second, AllowLoopbackRepos: true,
		SyncInterval: time.Minute, HealthInterval: 300 * time.Millisecond, Identity: "test-agent", Version: "v-test", HeartbeatEvery: time.Second}
	for _, tweak := range tweaks {
		tweak(&o)
	}
	require.NoError(t, agent.Setup(mgr, o))
	return testenv.RunManager(t, mgr)
}

var eventually = testenv.Eventually

// newAgentEnv starts an apiserver with the agent's namespace.
func newAgentEnv(t *testing.T) (*testenv.Env, client.Client) {
	t.Helper()
	env := testenv.Start(t)
	require.NoError(t, env.Client.Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}))
	return env, env.Client
}

func newApp(name, repoURL, path, destNS string, policy *flotillav1.SyncPolicy) *flotillav1.Application {
	return &flotillav1.Application{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: repoURL, TargetRevision: "main", Path: path},
			Destination: flotillav1.ApplicationDestination{Cluster: "self", Namespace: destNS},
			SyncPolicy:  policy,
		},
	}
}

func auto() *flotillav1.SyncPolicy {
	return &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}}
}

func getApp(t testing.TB, c client.Client, name string) *flotillav1.Application {
	t.Helper()
	app := &flotillav1.Application{}
	require.NoError(t, c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, app))
	return app
}

func cond(app *flotillav1.Application, typ string) metav1.Condition {
	if c := apimeta.FindStatusCondition(app.Status.Conditions, typ); c != nil {
		return *c
	}
	return metav1.Condition{}
}

// refresh requests a refresh of an Application (a new value each time).
func refresh(t testing.TB, c client.Client, name string) {
	t.Helper()
	annotate(t, c, name, flotillav1.AnnotationRefresh, time.Now().String())
}

// annotate sets one annotation of an Application.
func annotate(t testing.TB, c client.Client, name, key, value string) {
	t.Helper()
	app := getApp(t, c, name)
	patch := client.MergeFrom(app.DeepCopy())
	if app.Annotations == nil {
		app.Annotations = map[string]string{}
	}
	app.Annotations[key] = value
	require.NoError(t, c.Patch(t.Context(), app, patch))
}

func waitSynced(t testing.TB, c client.Client, name, revision string) *flotillav1.Application {
	t.Helper()
	var app *flotillav1.Application
	eventually(t, 30*time.Second, name+" Synced at "+revision, func() (bool, string) {
		app = getApp(t, c, name)
		s := cond(app, flotillav1.ConditionSynced)
		return s.Status == metav1.ConditionTrue && app.Status.Sync.Revision == revision, s.Reason + ": " + s.Message + " @" + app.Status.Sync.Revision
	})
	return app
}

func configMap(t testing.TB, c client.Client, namespace, name string) (*corev1.ConfigMap, error) {
	t.Helper()
	cm := &corev1.ConfigMap{}
	err := c.Get(t.Context(), types.NamespacedName{Namespace: namespace, Name: name}, cm)
	return cm, err
}

const cmA = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\ndata: {color: blue}\n"
const cmB = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\ndata: {size: large}\n"

func TestAgent(t *testing.T) {
	outer := t // the restarted agent must outlive its subtest
	env, c := newAgentEnv(t)
	ctx := t.Context()
	srv := gittest.New(t)
	repo := srv.Repo(t, "deploy")
	rev := repo.MustCommit(t, map[string]string{
		"apps/demo/a.yaml":     cmA,
		"apps/demo/b.yaml":     cmB,
		"apps/demo/svc.yaml":   "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n",
		"apps/bad/cm.yaml":     "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: fine}\ndata: {k: v}\n",
		"apps/bad/svc.yaml":    "apiVersion: v1\nkind: Service\nmetadata: {name: broken}\nspec: {ports: [{port: 99999}]}\n",
		"apps/bad/widget.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
		"apps/crd/crd.yaml":    crdYAML,
		"apps/crd/cr.yaml":     "apiVersion: example.com/v1\nkind: Gadget\nmetadata: {name: g1}\nspec: {size: 3}\n",
	}, "initial")
	gitDir := filepath.Join(t.TempDir(), "git")
	stop := startAgent(t, env, gitDir)

	require.NoError(t, c.Create(ctx, newApp("demo", repo.URL, "apps/demo", "demo", auto())))
	app := waitSynced(t, c, "demo", rev)

	t.Run("applies, labels, records inventory, health and heartbeat", func(t *testing.T) {
		cm, err := configMap(t, c, "demo", "a")
		require.NoError(t, err)
		assert.Equal(t, "blue", cm.Data["color"])
		assert.Equal(t, "demo", cm.Labels[flotillav1.LabelApplication])
		assert.Equal(t, flotillav1.HealthHealthy, app.Status.Health.Status)
		assert.Equal(t, int32(3), app.Status.ResourceCount)
		assert.NotNil(t, app.Status.Sync.CommitTime)
		assert.Equal(t, flotillav1.SyncStatusSynced, app.Status.Sync.Status)
		assert.Contains(t, app.Finalizers, flotillav1.FinalizerResources)
		inv := &corev1.ConfigMap{}
		require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: ns, Name: "flotilla-inventory-demo"}, inv))
		assert.Contains(t, inv.Data["inventory"], `"name":"b"`)
		eventually(t, 10*time.Second, "heartbeat Lease", func() (bool, string) {
			lease := &coordinationv1.Lease{}
			err := c.Get(ctx, types.NamespacedName{Namespace: ns, Name: flotillav1.AgentLeaseName}, lease)
			return err == nil && lease.Annotations[flotillav1.AnnotationAgentVersion] == "v-test" && lease.Spec.RenewTime != nil, ""
		})
	})

	t.Run("drift is reverted, counted and attributed", func(t *testing.T) {
		cm, err := configMap(t, c, "demo", "a")
		require.NoError(t, err)
		cm.Data["color"] = "red"
		require.NoError(t, c.Update(ctx, cm, client.FieldOwner("kubectl-edit")))
		eventually(t, 10*time.Second, "drift reverted", func() (bool, string) {
			cm, err := configMap(t, c, "demo", "a")
			require.NoError(t, err)
			return cm.Data["color"] == "blue", cm.Data["color"]
		})
		eventually(t, 10*time.Second, "drift counted", func() (bool, string) {
			a := getApp(t, c, "demo")
			return a.Status.DriftCorrections >= 1, ""
		})
		eventually(t, 10*time.Second, "drift event naming the manager", func() (bool, string) {
			var evs corev1.EventList
			require.NoError(t, c.List(ctx, &evs, client.InNamespace(ns)))
			for _, e := range evs.Items {
				if e.Reason == "DriftCorrected" && strings.Contains(e.Message, "kubectl-edit") && strings.Contains(e.Message, "ConfigMap demo a") {
					return true, ""
				}
			}
			return false, ""
		})
	})

	t.Run("without selfHeal, drift is reported OutOfSync and left alone", func(t *testing.T) {
		setSelfHeal(t, c, "demo", false)
		cm, err := configMap(t, c, "demo", "a")
		require.NoError(t, err)
		cm.Data["color"] = "green"
		require.NoError(t, c.Update(ctx, cm, client.FieldOwner("kubectl-edit")))
		eventually(t, 10*time.Second, "OutOfSync", func() (bool, string) {
			a := getApp(t, c, "demo")
			s := cond(a, flotillav1.ConditionSynced)
			for _, r := range a.Status.Resources {
				if r.Name == "a" && r.Sync == flotillav1.SyncStatusOutOfSync && strings.Contains(r.Message, "kubectl-edit") {
					return s.Reason == "OutOfSync" && a.Status.Sync.Status == flotillav1.SyncStatusOutOfSync, s.Message
				}
			}
			return false, fmt.Sprintf("%s %+v", s.Reason, a.Status.Resources)
		})
		time.Sleep(time.Second)
		cm, err = configMap(t, c, "demo", "a")
		require.NoError(t, err)
		assert.Equal(t, "green", cm.Data["color"], "not reverted without selfHeal")
		setSelfHeal(t, c, "demo", true)
		refresh(t, c, "demo")
		eventually(t, 10*time.Second, "reverted once selfHeal is back", func() (bool, string) {
			cm, err := configMap(t, c, "demo", "a")
			require.NoError(t, err)
			return cm.Data["color"] == "blue", cm.Data["color"]
		})
	})

	t.Run("a render failure changes nothing and says why", func(t *testing.T) {
		bad := repo.MustCommit(t, map[string]string{"apps/demo/broken.yaml": "kind: [unclosed\n"}, "break the app")
		refresh(t, c, "demo")
		eventually(t, 30*time.Second, "RenderFailed", func() (bool, string) {
			a := getApp(t, c, "demo")
			s := cond(a, flotillav1.ConditionSynced)
			return s.Reason == "RenderFailed" && a.Status.Sync.Revision == bad && strings.Contains(s.Message, "broken.yaml"), s.Reason + ": " + s.Message
		})
		_, err := configMap(t, c, "demo", "b")
		assert.NoError(t, err, "applied objects stay")
		rev = repo.MustCommit(t, map[string]string{"apps/demo/broken.yaml": gittest.Delete}, "fix the app")
		refresh(t, c, "demo")
		waitSynced(t, c, "demo", rev)
	})

	t.Run("prune deletes only what left Git and what the agent applied", func(t *testing.T) {
		lookalike := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "lookalike", Namespace: "demo",
			Labels: map[string]string{flotillav1.LabelApplication: "demo"}, Annotations: map[string]string{flotillav1.AnnotationApplication: "demo"}}}
		require.NoError(t, c.Create(ctx, lookalike))
		rev = repo.MustCommit(t, map[string]string{"apps/demo/b.yaml": gittest.Delete}, "drop b")
		refresh(t, c, "demo")
		waitSynced(t, c, "demo", rev)
		_, err := configMap(t, c, "demo", "b")
		assert.True(t, apierrors.IsNotFound(err), "b must be pruned: %v", err)
		_, err = configMap(t, c, "demo", "lookalike")
		assert.NoError(t, err, "a look-alike not in the inventory survives")
		_, err = configMap(t, c, "demo", "a")
		assert.NoError(t, err)
	})

	t.Run("an agent restart prunes nothing and rewrites nothing", func(t *testing.T) {
		before, err := configMap(t, c, "demo", "a")
		require.NoError(t, err)
		stop()
		stop = startAgent(outer, env, filepath.Join(outer.TempDir(), "git2"))
		waitSynced(t, c, "demo", rev)
		time.Sleep(2 * time.Second)
		after, err := configMap(t, c, "demo", "a")
		require.NoError(t, err)
		assert.Equal(t, before.UID, after.UID)
		assert.Equal(t, before.ResourceVersion, after.ResourceVersion, "an unchanged object is not rewritten")
		_, err = configMap(t, c, "demo", "lookalike")
		assert.NoError(t, err)
	})

	t.Run("a rejected object and an unknown kind do not stop the others", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, newApp("bad", repo.URL, "apps/bad", "bad", auto())))
		var app *flotillav1.Application
		eventually(t, 30*time.Second, "ApplyFailed", func() (bool, string) {
			app = getApp(t, c, "bad")
			s := cond(app, flotillav1.ConditionSynced)
			return s.Reason == "ApplyFailed", s.Reason + ": " + s.Message
		})
		_, err := configMap(t, c, "bad", "fine")
		require.NoError(t, err, "the valid object is applied")
		assert.Equal(t, flotillav1.HealthDegraded, app.Status.Health.Status)
		msgs := map[string]string{}
		for _, r := range app.Status.Resources {
			msgs[r.Kind+"/"+r.Name] = r.Message
		}
		assert.Contains(t, msgs["Service/broken"], "99999", "the apiserver's own message")
		assert.Contains(t, msgs["Widget/w"], "unknown kind")
	})

	t.Run("CRDs are applied and Established before their objects", func(t *testing.T) {
		require.NoError(t, c.Create(ctx, newApp("crd", repo.URL, "apps/crd", "gadgets", auto())))
		waitSynced(t, c, "crd", rev)
		g := &unstructured.Unstructured{}
		g.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Gadget"})
		require.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "gadgets", Name: "g1"}, g))
	})

	t.Run("an empty render never prunes everything", func(t *testing.T) {
		rev = repo.MustCommit(t, map[string]string{"apps/demo/a.yaml": gittest.Delete, "apps/demo/svc.yaml": gittest.Delete, "apps/demo/README.md": "empty"}, "empty the app")
		refresh(t, c, "demo")
		eventually(t, 30*time.Second, "EmptyRender", func() (bool, string) {
			s := cond(getApp(t, c, "demo"), flotillav1.ConditionSynced)
			return s.Reason == "EmptyRender", s.Reason
		})
		_, err := configMap(t, c, "demo", "a")
		assert.NoError(t, err, "nothing pruned")
		rev = repo.MustCommit(t, map[string]string{"apps/demo/a.yaml": cmA, "apps/demo/svc.yaml": "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {selector: {app: web}, ports: [{port: 80}]}\n"}, "restore")
		refresh(t, c, "demo")
		waitSynced(t, c, "demo", rev)
	})

	t.Run("an unreachable Git server changes nothing and says why", func(t *testing.T) {
		require.NoError(t, srv.Close())
		refresh(t, c, "demo")
		eventually(t, 30*time.Second, "FetchFailed", func() (bool, string) {
			a := getApp(t, c, "demo")
			s := cond(a, flotillav1.ConditionSynced)
			return s.Reason == "FetchFailed" && strings.Contains(a.Status.LastSyncError, repo.URL), s.Reason
		})
		_, err := configMap(t, c, "demo", "a")
		assert.NoError(t, err)
	})

	t.Run("deleting the Application removes its objects, unless preserved", func(t *testing.T) {
		a := getApp(t, c, "crd")
		patch := client.MergeFrom(a.DeepCopy())
		a.Spec.SyncPolicy.PreserveResourcesOnDeletion = true
		require.NoError(t, c.Patch(ctx, a, patch))
		require.NoError(t, c.Delete(ctx, a))
		require.NoError(t, c.Delete(ctx, getApp(t, c, "bad")))
		eventually(t, 30*time.Second, "Applications gone", func() (bool, string) {
			var list flotillav1.ApplicationList
			require.NoError(t, c.List(ctx, &list, client.InNamespace(ns)))
			return len(list.Items) == 1, ""
		})
		_, err := configMap(t, c, "bad", "fine")
		assert.True(t, apierrors.IsNotFound(err), "bad's objects are deleted: %v", err)
		g := &unstructured.Unstructured{}
		g.SetGroupVersionKind(schema.GroupVersionKind{Group: "example.com", Version: "v1", Kind: "Gadget"})
		assert.NoError(t, c.Get(ctx, types.NamespacedName{Namespace: "gadgets", Name: "g1"}, g), "preserved")
	})
}

const crdYAML = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata: {name: gadgets.example.com}
spec:
  group: example.com
  names: {kind: Gadget, plural: gadgets, singular: gadget, listKind: GadgetList}
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema: {openAPIV3Schema: {type: object, x-kubernetes-preserve-unknown-fields: true}}
`

func setSelfHeal(t testing.TB, c client.Client, name string, on bool) {
	t.Helper()
	app := getApp(t, c, name)
	patch := client.MergeFrom(app.DeepCopy())
	app.Spec.SyncPolicy.Automated.SelfHeal = on
	require.NoError(t, c.Patch(t.Context(), app, patch))
	eventually(t, 10*time.Second, "the agent saw the spec change", func() (bool, string) {
		a := getApp(t, c, name)
		return a.Status.ObservedGeneration == a.Generation, ""
	})
}
