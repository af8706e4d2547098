package main

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/webhook"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
	"github.com/flotilla-dev/flotilla/internal/procstat"
)

func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, msg := cond()
		if ok {
			return nil
		}
		last = msg
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return fmt.Errorf("%s: not after %s (%s)", what, timeout, last)
}

// healthyCount counts a set's Applications Healthy (and at rev, if given).
func healthyCount(ctx context.Context, c client.Client, set, rev string) (healthy, total int, err error) {
	apps := &flotillav1.ApplicationList{}
	if err := c.List(ctx, apps, client.InNamespace("default"), client.MatchingLabels{flotillav1.LabelApplicationSet: set}); err != nil {
		return 0, 0, err
	}
	for _, a := range apps.Items {
		if a.Status.Health.Status == flotillav1.HealthHealthy && a.Status.Sync.Status == flotillav1.SyncStatusSynced && (rev == "" || a.Status.Sync.Revision == rev) {
			healthy++
		}
	}
	return healthy, len(apps.Items), nil
}

func appNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("app-%02d", i)
	}
	return out
}

// --- 3. add a cluster -----------------------------------------------------

// benchAddCluster: label a registered cluster so that 20 apps match, until
// all 20 are Healthy on it; unlabel, wait until they are gone; repeat.
func benchAddCluster(ctx context.Context, c config, reps int) ([]time.Duration, error) {
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: filepath.Join(c.work, "add-cluster"), Spokes: []string{"spoke-1"}, ControlPlaneBin: c.cp, FlotillaBin: c.bin})
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Stop() }()
	repo, err := f.Git.CreateRepo("fleet")
	if err != nil {
		return nil, err
	}
	if _, err := repo.Commit(localfleet.SampleFiles(appNames(20), "v1"), "20 apps"); err != nil {
		return nil, err
	}
	if err := f.ApplyYAML(ctx, "add", localfleet.SampleAppSet("add", "default", repo.URL, "bench")); err != nil {
		return nil, err
	}
	var samples []time.Duration
	for i := range reps {
		start := time.Now()
		if _, err := f.Flotilla(ctx, "cluster", "label", "spoke-1", "env=bench", "--overwrite"); err != nil {
			return nil, err
		}
		if err := waitFor(ctx, 3*time.Minute, "20 apps Healthy", func() (bool, string) {
			h, n, err := healthyCount(ctx, f.Hub.Client, "add", "")
			if err != nil {
				return false, err.Error()
			}
			return h == 20, fmt.Sprintf("%d/%d Healthy", h, n)
		}); err != nil {
			return nil, err
		}
		samples = append(samples, time.Since(start))
		logf("  rep %d/%d: %s", i+1, reps, samples[len(samples)-1].Round(10*time.Millisecond))
		if _, err := f.Flotilla(ctx, "cluster", "label", "spoke-1", "env-"); err != nil {
			return nil, err
		}
		if err := waitFor(ctx, 3*time.Minute, "apps removed", func() (bool, string) {
			_, n, _ := healthyCount(ctx, f.Hub.Client, "add", "")
			spoke := &flotillav1.ApplicationList{}
			if err := f.Spokes["spoke-1"].Client.List(ctx, spoke, client.InNamespace(flotillav1.SystemNamespace)); err != nil {
				return false, err.Error()
			}
			return n == 0 && len(spoke.Items) == 0, fmt.Sprintf("hub %d, spoke %d", n, len(spoke.Items))
		}); err != nil {
			return nil, err
		}
	}
	return samples, nil
}

// --- 4. Git change --------------------------------------------------------

// refreshSet annotates the hub's set with flotilla.dev/refresh=rev (what
// `flotilla refresh SET` does): the hub resolves its branch again at once.
func refreshSet(ctx context.Context, c client.Client, name, rev string) error {
	set := &flotillav1.ApplicationSet{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: "default", Name: name}, set); err != nil {
		return err
	}
	patch := client.MergeFrom(set.DeepCopy())
	if set.Annotations == nil {
		set.Annotations = map[string]string{}
	}
	set.Annotations[flotillav1.AnnotationRefresh] = rev
	return c.Patch(ctx, set, patch)
}

// pushWebhook sends a GitHub push event for repoURL, signed with secret.
func pushWebhook(ctx context.Context, port int, secret, repoURL string) error {
	body := fmt.Appendf(nil, `{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, repoURL)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", port, webhook.Path), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", "sha256="+webhook.Sign([]byte(secret), body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("webhook: HTTP %d", resp.StatusCode)
	}
	return nil
}

// gitChangeResult: per mode (poll, refresh, webhook), the time until every
// Application is Healthy at the commit (all) and first reported it (synced).
type gitChangeResult struct{ all, synced map[string][]time.Duration }

// benchGitChange: 10 clusters (2 apiservers × 5 agent namespaces, one agent
// each) × 10 apps; a commit changing every app's image tag, until all 100
// report the new revision Healthy. Once with the agents' polling, once with
// an explicit refresh of the spoke Applications after the commit.
func benchGitChange(ctx context.Context, c config, clusters, nApps, reps int) (res gitChangeResult, err error) {
	res = gitChangeResult{all: map[string][]time.Duration{}, synced: map[string][]time.Duration{}}
	spokes := []string{"spoke-1", "spoke-2"}
	port, err := freePort()
	if err != nil {
		return res, err
	}
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: filepath.Join(c.work, "git-change"), Spokes: spokes, ControlPlaneBin: c.cp, FlotillaBin: c.bin,
		HubArgs: []string{fmt.Sprintf("--webhook-bind-address=127.0.0.1:%d", port)}})
	if err != nil {
		return res, err
	}
	defer func() { _ = f.Stop() }()
	hc := f.Hub.Client
	const hookSecret = "bench-hook-secret"
	if err := hc.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: flotillav1.SystemNamespace, Name: webhook.SecretName},
		StringData: map[string]string{"github": hookSecret}}); err != nil {
		return res, err
	}
	for i := range clusters {
		spoke := spokes[i%2]
		ns := fmt.Sprintf("gc-%02d", i)
		if _, err := f.StartExtraAgent(ctx, spoke, ns); err != nil {
			return res, err
		}
		raw, err := os.ReadFile(f.Spokes[spoke].Kubeconfig)
		if err != nil {
			return res, err
		}
		name := fmt.Sprintf("gc-%02d", i)
		if err := hc.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-kubeconfig", Namespace: flotillav1.SystemNamespace}, Data: map[string][]byte{"value": raw}}); err != nil {
			return res, err
		}
		if err := hc.Create(ctx, &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"env": "gitbench"}},
			Spec: flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: name + "-kubeconfig", Key: "value"}, AgentNamespace: ns}}); err != nil {
			return res, err
		}
	}
	apps := appNames(nApps)
	total := clusters * nApps
	repo, err := f.Git.CreateRepo("fleet")
	if err != nil {
		return res, err
	}
	files := localfleet.SampleFiles(apps, "t0")
	for k, v := range files {
		// One replica each: the rollout measured is Flotilla's, not 100
		// Deployments' surge steps on two shared cores.
		files[k] = strings.Replace(v, "replicas: 2", "replicas: 1", 1)
	}
	rev, err := repo.Commit(files, "10 apps")
	if err != nil {
		return res, err
	}
	set := localfleet.SampleAppSet("git", "default", repo.URL, "gitbench")
	// Two clusters share an apiserver: one namespace per cluster and app.
	set = replaceOnce(set, "namespace: '{{ .path.basename }}'", "namespace: '{{ .name }}-{{ .path.basename }}'")
	if err := f.ApplyYAML(ctx, "git", set); err != nil {
		return res, err
	}
	// wait returns when all 100 are Healthy at rev, and when all 100 first
	// reported rev (applied, maybe still rolling out).
	wait := func(rev string, start time.Time) (synced time.Duration, err error) {
		err = waitFor(ctx, 5*time.Minute, fmt.Sprintf("%d apps Healthy at %s", total, rev[:7]), func() (bool, string) {
			apps := &flotillav1.ApplicationList{}
			if err := hc.List(ctx, apps, client.InNamespace("default"), client.MatchingLabels{flotillav1.LabelApplicationSet: "git"}); err != nil {
				return false, err.Error()
			}
			at, healthy := 0, 0
			for _, a := range apps.Items {
				if a.Status.Sync.Revision == rev {
					at++
					if a.Status.Health.Status == flotillav1.HealthHealthy && a.Status.Sync.Status == flotillav1.SyncStatusSynced {
						healthy++
					}
				}
			}
			if at == total && synced == 0 {
				synced = time.Since(start)
			}
			return healthy == total, fmt.Sprintf("%d at the commit, %d Healthy", at, healthy)
		})
		return synced, err
	}
	if _, err := wait(rev, time.Now()); err != nil {
		return res, err
	}
	for _, mode := range []string{"poll", "refresh", "webhook"} {
		for i := range reps {
			files := map[string]string{}
			for _, a := range apps {
				files["apps/"+a+"/kustomization.yaml"] = localfleet.SampleKustomization(a, fmt.Sprintf("%s-%d", mode, i))
			}
			rev, err := repo.Commit(files, "new tag")
			if err != nil {
				return res, err
			}
			start := time.Now()
			switch mode {
			case "refresh":
				if err := refreshSet(ctx, hc, "git", rev); err != nil {
					return res, err
				}
			case "webhook":
				if err := pushWebhook(ctx, port, hookSecret, repo.URL); err != nil {
					return res, err
				}
			}
			synced, err := wait(rev, start)
			if err != nil {
				return res, err
			}
			d := time.Since(start)
			res.all[mode], res.synced[mode] = append(res.all[mode], d), append(res.synced[mode], synced)
			logf("  %s %d/%d: all at the commit in %s, all Healthy in %s", mode, i+1, reps, synced.Round(10*time.Millisecond), d.Round(10*time.Millisecond))
		}
	}
	return res, nil
}

func replaceOnce(s, old, new string) string {
	if !strings.Contains(s, old) {
		panic("replaceOnce: " + old)
	}
	return strings.Replace(s, old, new, 1)
}

// --- 5. agent -------------------------------------------------------------

type agentResult struct {
	apps, objects    int
	helm             bool // each Application a Helm chart rendering the objects
	wall             time.Duration
	cpu, peakRSS     float64
	idleCPUPerMinute float64
}

// benchAgent: apps Applications × objects ConfigMaps into one apiserver,
// synced by a fresh agent; with helm, each Application is a chart.
func benchAgent(ctx context.Context, c config, apps, objects int, helm bool) (*agentResult, error) {
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: filepath.Join(c.work, fmt.Sprintf("agent-%d-%t", apps, helm)), Spokes: []string{"spoke-1"}, ControlPlaneBin: c.cp, FlotillaBin: c.bin})
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Stop() }()
	repo, err := f.Git.CreateRepo("objects")
	if err != nil {
		return nil, err
	}
	files := map[string]string{}
	for a := range apps {
		dir := fmt.Sprintf("apps/app-%03d", a)
		if helm {
			maps.Copy(files, benchChart(dir, a, objects))
			continue
		}
		maps.Copy(files, benchPlain(dir, a, objects))
	}
	rev, err := repo.Commit(files, "objects")
	if err != nil {
		return nil, err
	}
	const ns = "agent-bench"
	// The bench writes the spoke Applications itself, as no hub.
	agent, err := f.StartExtraAgent(ctx, "spoke-1", ns, "--sync-interval=3m", "--health-interval=5s", "--require-project-rules=false")
	if err != nil {
		return nil, err
	}
	time.Sleep(2 * time.Second)
	base, err := procstat.Read(agent.Pid())
	if err != nil {
		return nil, err
	}
	sc := f.Spokes["spoke-1"].Client
	start := time.Now()
	for a := range apps {
		app := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("app-%03d", a), Namespace: ns},
			Spec: flotillav1.ApplicationSpec{
				Source:      flotillav1.ApplicationSource{RepoURL: repo.URL, TargetRevision: "main", Path: fmt.Sprintf("apps/app-%03d", a)},
				Destination: flotillav1.ApplicationDestination{Cluster: "self", Namespace: fmt.Sprintf("bench-%03d", a)},
				SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}},
			}}
		if err := sc.Create(ctx, app); err != nil {
			return nil, err
		}
	}
	if err := waitFor(ctx, 5*time.Minute, "all Synced+Healthy", func() (bool, string) {
		list := &flotillav1.ApplicationList{}
		if err := sc.List(ctx, list, client.InNamespace(ns)); err != nil {
			return false, err.Error()
		}
		done := 0
		for _, a := range list.Items {
			if a.Status.Sync.Status == flotillav1.SyncStatusSynced && a.Status.Sync.Revision == rev && a.Status.Health.Status == flotillav1.HealthHealthy && int(a.Status.ResourceCount) == objects {
				done++
			}
		}
		return done == apps, fmt.Sprintf("%d/%d", done, apps)
	}); err != nil {
		return nil, err
	}
	res := &agentResult{apps: apps, objects: objects, helm: helm, wall: time.Since(start)}
	synced, err := procstat.Read(agent.Pid())
	if err != nil {
		return nil, err
	}
	idle := time.Minute
	if c.quick {
		idle = 15 * time.Second
	}
	time.Sleep(idle)
	end, err := procstat.Read(agent.Pid())
	if err != nil {
		return nil, err
	}
	res.cpu = synced.CPUSeconds - base.CPUSeconds
	res.idleCPUPerMinute = (end.CPUSeconds - synced.CPUSeconds) / idle.Minutes()
	res.peakRSS = end.PeakRSSMiB
	logf("  %d×%d (helm %t): %s, %.1f CPU s, peak RSS %.0f MiB, idle %.2f CPU s/min", apps, objects, helm, res.wall.Round(10*time.Millisecond), res.cpu, res.peakRSS, res.idleCPUPerMinute)
	return res, nil
}

// --- statistics -------------------------------------------------------------

func sorted(xs []float64) []float64 {
	out := append([]float64(nil), xs...)
	sort.Float64s(out)
	return out
}

func median(xs []float64) float64 { return quantile(xs, 0.5) }

// quantile interpolates linearly between order statistics.
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := sorted(xs)
	pos := q * float64(len(s)-1)
	lo := int(pos)
	if lo+1 >= len(s) {
		return s[len(s)-1]
	}
	return s[lo] + (pos-float64(lo))*(s[lo+1]-s[lo])
}

func seconds(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = d.Seconds()
	}
	return out
}
