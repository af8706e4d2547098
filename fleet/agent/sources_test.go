package agent_test

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/helmtest"
)

func credentialSecret(name, url, user, pass, ca string) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{flotillav1.LabelSecretType: git.SecretTypeRepository}},
		StringData: map[string]string{git.SecretKeyURL: url, git.SecretKeyUsername: user, git.SecretKeyPassword: pass, git.SecretKeyCABundle: ca}}
}

// watchAdded records the order in which ConfigMaps of a namespace are
// created and which are deleted.
func watchAdded(t *testing.T, c client.WithWatch, namespace string) func() (added, deleted []string) {
	w, err := c.Watch(t.Context(), &corev1.ConfigMapList{}, client.InNamespace(namespace))
	require.NoError(t, err)
	var mu sync.Mutex
	var added, deleted []string
	go func() {
		for ev := range w.ResultChan() {
			cm, ok := ev.Object.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			mu.Lock()
			switch ev.Type {
			case watch.Added:
				added = append(added, cm.Name)
			case watch.Deleted:
				deleted = append(deleted, cm.Name)
			}
			mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return func() ([]string, []string) {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(added), slices.Clone(deleted)
	}
}

// TestPrivateSources: the agent reads a private Git repository over HTTPS
// (basic auth, a private CA) and a private Helm repository with the
// credentials the hub copied into its namespace; a chart's hooks run in
// order; a wrong password is a FetchFailed condition that changes nothing
// and says nothing secret; a rotated password is picked up.
func TestPrivateSources(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	gitSrv := gittest.NewTLS(t)
	repo := gitSrv.Repo(t, "private")
	files := map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {a: b}\n"}
	for k, v := range map[string]string{
		"chart/Chart.yaml":          "apiVersion: v2\nname: hooked\nversion: 0.1.0\n",
		"chart/values.yaml":         "replicas: 1\n",
		"chart/templates/main.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: main}\ndata: {replicas: {{ .Values.replicas | quote }}}\n",
		"chart/templates/pre.yaml":  "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pre\n  annotations: {helm.sh/hook: pre-install, helm.sh/hook-weight: \"-5\"}\n",
		"chart/templates/pre2.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: pre2\n  annotations: {helm.sh/hook: pre-upgrade, helm.sh/hook-weight: \"3\"}\n",
		"chart/templates/post.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: post\n  annotations: {helm.sh/hook: post-install, helm.sh/hook-delete-policy: hook-succeeded}\n",
	} {
		files[k] = v
	}
	repo.MustCommit(t, files, "private")
	gitSrv.RequireBasicAuth("ci", "git-pass-1")

	helmRepo := helmtest.NewRepo(t)
	for _, v := range []string{"1.0.0", "1.1.0", "2.0.0"} {
		ch := helmtest.Chart{Name: "remote", Version: v, Templates: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: remote}\ndata: {v: " + v + "}\n"}}
		helmRepo.Add(t, ch, helmtest.Package(t, ch))
	}
	helmRepo.RequireBasicAuth("reader", "helm-pass-1")
	require.NoError(t, c.Create(ctx, credentialSecret("git", gitSrv.URL, "ci", "git-pass-1", string(gitSrv.CAPEM))))
	require.NoError(t, c.Create(ctx, credentialSecret("helm", helmRepo.URL, "reader", "helm-pass-1", "")))
	// A credential Secret in another namespace is never read.
	require.NoError(t, c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "elsewhere"}}))
	other := credentialSecret("other", gitSrv.URL+"/private", "ci", "git-pass-1", string(gitSrv.CAPEM))
	other.Namespace = "elsewhere"
	require.NoError(t, c.Create(ctx, other))

	wc, err := client.NewWithWatch(env.Config, client.Options{Scheme: env.Client.Scheme()})
	require.NoError(t, err)
	order := watchAdded(t, wc, "hooks")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	plain := newApp("plain", repo.URL, "app", "plain", auto())
	chart := newApp("hooked", repo.URL, "chart", "hooks", auto())
	chart.Spec.Source.Helm = &flotillav1.HelmSource{Values: "replicas: 3\n"}
	remote := newApp("remote", helmRepo.URL, "", "remote", auto())
	remote.Spec.Source.Chart, remote.Spec.Source.TargetRevision = "remote", "^1.0"
	for _, a := range []*flotillav1.Application{plain, chart, remote} {
		require.NoError(t, c.Create(ctx, a))
	}
	for _, name := range []string{"plain", "hooked", "remote"} {
		eventually(t, 60*time.Second, name+" Synced and Healthy", func() (bool, string) {
			app := getApp(t, c, name)
			return cond(app, flotillav1.ConditionSynced).Status == metav1.ConditionTrue && app.Status.Health.Status == flotillav1.HealthHealthy,
				fmt.Sprintf("%v %s", cond(app, flotillav1.ConditionSynced), app.Status.Health.Status)
		})
	}
	assert.Equal(t, "1.1.0", getApp(t, c, "remote").Status.Sync.Revision, "the range resolved, and reported")
	cm, err := configMap(t, c, "hooks", "main")
	require.NoError(t, err)
	assert.Equal(t, "3", cm.Data["replicas"], "inline values")
	eventually(t, 20*time.Second, "the post hook run and deleted", func() (bool, string) {
		added, deleted := order()
		return slices.Contains(deleted, "post"), fmt.Sprintf("added %v deleted %v", added, deleted)
	})
	added, _ := order()
	assert.Equal(t, []string{"pre", "pre2", "main", "post"}, added, "pre hooks by weight, then the chart, then post hooks")
	_, err = configMap(t, c, "hooks", "pre")
	require.NoError(t, err, "a hook without a delete policy stays (before-hook-creation)")
	assert.Len(t, getApp(t, c, "hooked").Status.Resources, 1, "hooks are not the Application's resources")

	// A wrong password: FetchFailed, nothing changed, nothing secret said.
	setPassword(t, c, "helm", "wrong-pass-2")
	refresh(t, c, "remote")
	eventually(t, 30*time.Second, "remote FetchFailed", func() (bool, string) {
		s := cond(getApp(t, c, "remote"), flotillav1.ConditionSynced)
		return s.Reason == flotillav1.ReasonFetchFailed && strings.Contains(s.Message, "refused the credentials"), s.Message
	})
	_, err = configMap(t, c, "remote", "remote")
	require.NoError(t, err, "what was applied stays")

	// Rotation: the Git server and the Secret get a new password.
	gitSrv.RequireBasicAuth("ci", "git-pass-3")
	refresh(t, c, "plain")
	eventually(t, 30*time.Second, "plain FetchFailed with the old password", func() (bool, string) {
		s := cond(getApp(t, c, "plain"), flotillav1.ConditionSynced)
		return s.Reason == flotillav1.ReasonFetchFailed, s.Message
	})
	setPassword(t, c, "git", "git-pass-3")
	setPassword(t, c, "helm", "helm-pass-1")
	for _, name := range []string{"plain", "remote"} {
		eventually(t, 30*time.Second, name+" Synced again after the rotation, without a refresh", func() (bool, string) {
			s := cond(getApp(t, c, name), flotillav1.ConditionSynced)
			return s.Status == metav1.ConditionTrue, s.Message
		})
	}

	// No secret in any status or Event.
	var apps flotillav1.ApplicationList
	require.NoError(t, c.List(ctx, &apps, client.InNamespace(ns)))
	var evs eventsv1.EventList
	require.NoError(t, c.List(ctx, &evs))
	var text strings.Builder
	for _, a := range apps.Items {
		fmt.Fprintf(&text, "%+v\n", a.Status)
	}
	for _, e := range evs.Items {
		fmt.Fprintln(&text, e.Note)
	}
	for _, s := range []string{"git-pass-1", "wrong-pass-2", "git-pass-3", "helm-pass-1", "BEGIN CERTIFICATE"} {
		assert.NotContains(t, text.String(), s)
	}
}

func setPassword(t *testing.T, c client.Client, name, password string) {
	t.Helper()
	s := &corev1.Secret{}
	require.NoError(t, c.Get(t.Context(), client.ObjectKey{Namespace: ns, Name: name}, s))
	s.Data[git.SecretKeyPassword] = []byte(password)
	require.NoError(t, c.Update(t.Context(), s))
}

// TestPinnedCommit: an Application the hub pinned is synced at that commit,
// not at the head of its branch; a new pin moves it.
func TestPinnedCommit(t *testing.T) {
	env, c := newAgentEnv(t)
	repo := gittest.New(t).Repo(t, "pinned")
	rev1 := repo.MustCommit(t, map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pinned}\ndata: {v: one}\n"}, "one")
	rev2 := repo.MustCommit(t, map[string]string{"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: pinned}\ndata: {v: two}\n"}, "two")
	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"))
	defer stop()
	app := newApp("pinned", repo.URL, "app", "pinned", auto())
	app.Spec.Source.PinnedCommit = rev1
	require.NoError(t, c.Create(t.Context(), app))
	waitSynced(t, c, "pinned", rev1)
	cm, err := configMap(t, c, "pinned", "pinned")
	require.NoError(t, err)
	assert.Equal(t, "one", cm.Data["v"], "the pinned commit, not the branch's head")

	app = getApp(t, c, "pinned")
	app.Spec.Source.PinnedCommit = rev2
	require.NoError(t, c.Update(t.Context(), app))
	waitSynced(t, c, "pinned", rev2)
	cm, err = configMap(t, c, "pinned", "pinned")
	require.NoError(t, err)
	assert.Equal(t, "two", cm.Data["v"])
}
