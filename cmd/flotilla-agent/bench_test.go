package main_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// BenchmarkAgent100x10 runs the real agent binary and syncs 100
// Applications of 10 objects each into one apiserver. It reports the wall
// time until every Application is Synced and Healthy, the agent's peak RSS
// and CPU seconds, and its CPU per idle minute afterwards.
// Run: go test -run XXX -bench Agent100x10 -benchtime 1x ./cmd/flotilla-agent/
func BenchmarkAgent100x10(b *testing.B) {
	const apps, objects = 100, 10
	env := testenv.Start(b)
	ctx := b.Context()
	bin := testenv.BuildBinary(b, "flotilla-agent")
	require.NoError(b, env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: flotillav1.SystemNamespace}}))
	srv := gittest.New(b)
	repo := srv.Repo(b, "deploy")
	files := map[string]string{}
	for a := range apps {
		for o := range objects {
			files[fmt.Sprintf("apps/app-%03d/cm-%02d.yaml", a, o)] = fmt.Sprintf("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm-%02d}\ndata: {app: \"%d\", n: \"%d\"}\n", o, a, o)
		}
	}
	rev := repo.MustCommit(b, files, "100 apps")

	for b.Loop() {
		// FLOTILLA_AGENT_BENCH_ARGS adds flags, e.g. --render-in-process to
		// compare with the render sandbox.
		cmd := exec.Command(bin, append([]string{"--kubeconfig", env.Kubeconfig(b), "--metrics-bind-address", "0",
			"--health-probe-bind-address", "0", "--git-cache-dir", filepath.Join(b.TempDir(), "git"), "--allow-loopback-repositories", "--require-project-rules=false"},
			strings.Fields(os.Getenv("FLOTILLA_AGENT_BENCH_ARGS"))...)...)
		require.NoError(b, cmd.Start())
		exited := make(chan struct{})
		go func() { _ = cmd.Wait(); close(exited) }()
		start := time.Now()
		for a := range apps {
			ns := fmt.Sprintf("bench-%03d", a)
			app := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%03d", a), Namespace: flotillav1.SystemNamespace},
				Spec: flotillav1.ApplicationSpec{
					Source:      flotillav1.ApplicationSource{RepoURL: repo.URL, TargetRevision: "main", Path: fmt.Sprintf("apps/app-%03d", a)},
					Destination: flotillav1.ApplicationDestination{Cluster: "self", Namespace: ns},
					SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}},
				}}
			require.NoError(b, env.Client.Create(ctx, app))
		}
		deadline := time.Now().Add(5 * time.Minute)
		for {
			var list flotillav1.ApplicationList
			require.NoError(b, env.Client.List(ctx, &list, client.InNamespace(flotillav1.SystemNamespace)))
			done := 0
			for _, a := range list.Items {
				if a.Status.Sync.Status == flotillav1.SyncStatusSynced && a.Status.Sync.Revision == rev && a.Status.Health.Status == flotillav1.HealthHealthy && a.Status.ResourceCount == objects {
					done++
				}
			}
			if done == apps {
				break
			}
			require.True(b, time.Now().Before(deadline), "only %d/%d Applications Synced+Healthy after 5m", done, apps)
			time.Sleep(200 * time.Millisecond)
		}
		wall := time.Since(start)
		syncCPU := cpuSeconds(b, cmd.Process.Pid)
		time.Sleep(60 * time.Second)
		idleCPU := cpuSeconds(b, cmd.Process.Pid) - syncCPU
		rss := peakRSSMiB(b, cmd.Process.Pid)
		_ = cmd.Process.Kill()
		<-exited
		b.ReportMetric(wall.Seconds(), "s-to-all-synced-healthy")
		b.ReportMetric(rss, "agent-peak-RSS-MiB")
		b.ReportMetric(syncCPU, "agent-CPU-s")
		b.ReportMetric(idleCPU, "agent-idle-CPU-s/min")
		b.Logf("%d×%d: all Synced+Healthy in %s; agent peak RSS %.1f MiB, %.2f CPU s to sync, %.2f CPU s per idle minute", apps, objects, wall.Round(time.Millisecond), rss, syncCPU, idleCPU)
	}
}

func peakRSSMiB(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	require.NoError(b, err)
	for _, line := range strings.Split(string(raw), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, err := strconv.ParseFloat(strings.Fields(line)[1], 64)
			require.NoError(b, err)
			return kb / 1024
		}
	}
	b.Fatal("no VmHWM")
	return 0
}

func cpuSeconds(b *testing.B, pid int) float64 {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	require.NoError(b, err)
	fields := strings.Fields(string(raw)[strings.LastIndex(string(raw), ")")+2:])
	utime, _ := strconv.ParseFloat(fields[11], 64)
	stime, _ := strconv.ParseFloat(fields[12], 64)
	return (utime + stime) / 100 // USER_HZ
}
