package agent_test

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/agent"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/helmtest"
)

// TestBadSourcesAreConditions: each bad source is one clear line in its
// Application's Synced condition, and nothing else changes — a good
// Application beside them stays Synced and Healthy.
func TestBadSourcesAreConditions(t *testing.T) {
	env, c := newAgentEnv(t)
	ctx := t.Context()
	srv := gittest.New(t)
	repo := srv.Repo(t, "bad")
	rev := repo.MustCommit(t, map[string]string{
		"good/cm.yaml":              "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: good}\n",
		"chart/Chart.yaml":          "apiVersion: v2\nname: c\nversion: 0.1.0\n",
		"chart/templates/cm.yaml":   "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n",
		"failing/Chart.yaml":        "apiVersion: v2\nname: failing\nversion: 0.1.0\n",
		"failing/templates/cm.yaml": "{{ required \"set .Values.host: the public host name\" .Values.host }}\n",
	}, "sources")
	ssh := srv.ServeSSH(t)
	charts := helmtest.NewRepo(t)
	small := helmtest.Chart{Name: "small", Version: "1.0.0", Templates: map[string]string{"cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: small}\n"}}
	charts.Add(t, small, helmtest.Package(t, small))
	noise := make([]byte, 96<<10)
	_, _ = rand.Read(noise)
	big := helmtest.Chart{Name: "big", Version: "1.0.0", Files: map[string]string{"noise.txt": base64.StdEncoding.EncodeToString(noise)}, Templates: small.Templates}
	charts.Add(t, big, helmtest.Package(t, big))
	slow := helmtest.NewRegistry(t, "", "")
	slow.Push(t, "charts", small, helmtest.Package(t, small))
	slow.Delay(10 * time.Second)
	require.NoError(t, c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "ssh", Namespace: ns, Labels: map[string]string{flotillav1.LabelSecretType: git.SecretTypeRepository}},
		StringData: map[string]string{git.SecretKeyURL: "ssh://git@" + ssh.Addr, git.SecretKeySSHPrivateKey: ssh.ClientKey, git.SecretKeySSHKnownHosts: ssh.OtherKnownHosts}}))

	stop := startAgent(t, env, filepath.Join(t.TempDir(), "git"), func(o *agent.Options) { o.MaxChartBytes = 64 << 10 })
	defer stop()
	cases := []struct {
		name, reason, says string
		app                func(*flotillav1.Application)
	}{
		{"no-such-version", flotillav1.ReasonFetchFailed, `has no chart small matching version "9.x"`, func(a *flotillav1.Application) {
			a.Spec.Source = flotillav1.ApplicationSource{RepoURL: charts.URL, Chart: "small", TargetRevision: "9.x"}
		}},
		{"archive-too-big", flotillav1.ReasonFetchFailed, "over the size limit", func(a *flotillav1.Application) {
			a.Spec.Source = flotillav1.ApplicationSource{RepoURL: charts.URL, Chart: "big", TargetRevision: "1.0.0"}
		}},
		{"registry-timeout", flotillav1.ReasonFetchFailed, "timed out", func(a *flotillav1.Application) {
			a.Spec.Source = flotillav1.ApplicationSource{RepoURL: slow.URL + "/charts", Chart: "small", TargetRevision: "1.0.0"}
		}},
		{"unknown-host-key", flotillav1.ReasonFetchFailed, "is not in sshKnownHosts", func(a *flotillav1.Application) {
			a.Spec.Source.RepoURL = ssh.URL(repo)
			a.Spec.Source.Path = "good"
		}},
		{"values-outside", flotillav1.ReasonRenderFailed, "outside the repository", func(a *flotillav1.Application) {
			a.Spec.Source.Path, a.Spec.Source.Helm = "chart", &flotillav1.HelmSource{ValueFiles: []string{"../../../etc/passwd"}}
		}},
		{"failing-template", flotillav1.ReasonRenderFailed, "set .Values.host: the public host name", func(a *flotillav1.Application) {
			a.Spec.Source.Path = "failing"
		}},
	}
	require.NoError(t, c.Create(ctx, newApp("good", repo.URL, "good", "good", auto())))
	for _, tc := range cases {
		a := newApp(tc.name, repo.URL, "", tc.name, auto())
		tc.app(a)
		require.NoError(t, c.Create(ctx, a))
	}
	for _, tc := range cases {
		eventually(t, 60*time.Second, tc.name+": "+tc.reason, func() (bool, string) {
			s := cond(getApp(t, c, tc.name), flotillav1.ConditionSynced)
			return s.Status == metav1.ConditionFalse && s.Reason == tc.reason && strings.Contains(s.Message, tc.says), fmt.Sprintf("%s: %s", s.Reason, s.Message)
		})
		s := cond(getApp(t, c, tc.name), flotillav1.ConditionSynced)
		assert.NotContains(t, s.Message, "\n", "%s: one line", tc.name)
		assert.NotContains(t, s.Message, "PRIVATE KEY", tc.name)
	}
	waitSynced(t, c, "good", rev)
	assert.Equal(t, flotillav1.HealthHealthy, getApp(t, c, "good").Status.Health.Status, "the good Application beside them is untouched")
}
