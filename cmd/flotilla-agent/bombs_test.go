package main_test

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/procstat"
	"github.com/flotilla-dev/flotilla/internal/testenv"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// TestAgentSurvivesBombs runs the real agent binary with Applications that
// would exhaust its memory (alias bombs in a manifest and in an inline
// patch, a render heavier than its budget) beside a plain one: each bad
// Application fails with a message saying why, the plain one syncs, and the
// agent stays up well under its chart's 512Mi limit.
func TestAgentSurvivesBombs(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	bin := testenv.BuildBinary(t, "flotilla-agent")
	require.NoError(t, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.SystemNamespace}}))
	files := map[string]string{
		"bomb/cm.yaml":  yamlbound.Bomb(9),
		"plain/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: plain}\ndata: {from: git}\n",
	}
	// The heavy app has a repository of its own: a render loads its whole
	// repository, so it would weigh on the others' renders too.
	heavyFiles := map[string]string{}
	var gen strings.Builder
	gen.WriteString("configMapGenerator:\n")
	for i := range 40 {
		heavyFiles[fmt.Sprintf("heavy/data-%d.txt", i)] = strings.Repeat(strconv.Itoa(i%10), 900<<10)
		fmt.Fprintf(&gen, "- {name: cm-%d, files: [data-%d.txt]}\n", i, i)
	}
	heavyFiles["heavy/kustomization.yaml"] = gen.String()
	srv := gittest.New(t)
	repo, heavyRepo := srv.Repo(t, "bombs"), srv.Repo(t, "heavy")
	repo.MustCommit(t, files, "bombs")
	heavyRepo.MustCommit(t, heavyFiles, "heavy")

	// 100Mi: a render process starts at ~58 MiB resident (measured), so the
	// plain app has ~40 MiB to spare, and the heavy one passes 140 MiB.
	var logs bytes.Buffer
	cmd := exec.Command(bin, "--kubeconfig", env.Kubeconfig(t), "--metrics-bind-address", "0", "--health-probe-bind-address", "0",
		"--git-cache-dir", filepath.Join(t.TempDir(), "git"), "--allow-loopback-repositories", "--render-memory", "100Mi", "--sync-interval", "1m",
		"--require-project-rules=false") // the test writes the Applications, as no hub
	cmd.Stdout, cmd.Stderr = &logs, &logs
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_, _ = cmd.Process.Wait()
		if t.Failed() {
			t.Logf("flotilla-agent output:\n%s", logs.String())
		}
	})

	app := func(name, path string, patches ...flotillav1.KustomizePatch) *flotillav1.Application {
		url := repo.URL
		if path == "heavy" {
			url = heavyRepo.URL
		}
		a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: flotillav1.SystemNamespace},
			Spec: flotillav1.ApplicationSpec{
				Source:      flotillav1.ApplicationSource{RepoURL: url, TargetRevision: "main", Path: path},
				Destination: flotillav1.ApplicationDestination{Cluster: "self", Namespace: "default"},
				SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true}},
			}}
		if len(patches) > 0 {
			a.Spec.Source.Kustomize = &flotillav1.KustomizeSource{Patches: patches}
		}
		return a
	}
	for _, a := range []*flotillav1.Application{
		app("bomb", "bomb"), app("patch-bomb", "plain", flotillav1.KustomizePatch{Patch: yamlbound.Bomb(9)}), app("heavy", "heavy"), app("plain", "plain"),
	} {
		require.NoError(t, env.Client.Create(ctx, a))
	}
	want := map[string]string{"bomb": "YAML too large when expanded", "patch-bomb": "YAML too large when expanded", "heavy": "memory budget"}
	testenv.Eventually(t, 60*time.Second, "each bad Application fails with its reason, the plain one syncs", func() (bool, string) {
		var missing []string
		for name, msg := range want {
			a := &flotillav1.Application{}
			require.NoError(t, env.Client.Get(ctx, types.NamespacedName{Namespace: flotillav1.SystemNamespace, Name: name}, a))
			c := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionSynced)
			if c == nil || c.Reason != flotillav1.ReasonRenderFailed || !strings.Contains(c.Message, msg) {
				missing = append(missing, fmt.Sprintf("%s: %+v", name, c))
			}
		}
		cm := &corev1.ConfigMap{}
		if err := env.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "plain"}, cm); err != nil {
			missing = append(missing, "plain: "+err.Error())
		}
		return len(missing) == 0, strings.Join(missing, "; ")
	})
	require.Nil(t, cmd.ProcessState, "the agent is still running")
	stats, err := procstat.Read(cmd.Process.Pid)
	require.NoError(t, err)
	t.Logf("agent peak RSS %.0f MiB", stats.PeakRSSMiB)
	assert.Less(t, stats.PeakRSSMiB, 256.0, "the agent's own peak memory (MiB)")
}
