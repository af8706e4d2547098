package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/framework"
)

// --- 1. generator ---------------------------------------------------------

type generatorResult struct {
	runs                        int
	nsPerOp, allocsPerOp, bytes []float64
	peakHeapMiB, nsPerApp       []float64
	maxRSSMiB                   float64
}

var benchLine = regexp.MustCompile(`^BenchmarkMatrix1000x50\S*\s+\d+\s+(.*)$`)

func benchGenerator(c config) (*generatorResult, error) {
	testBin := filepath.Join(c.work, "generators.test")
	build := exec.Command("go", "test", "-c", "-o", testBin, "./generators/")
	build.Dir = c.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	count, benchtime := "3", "3x"
	if c.quick {
		count, benchtime = "1", "1x"
	}
	cmd := exec.Command(testBin, "-test.run", "XXX", "-test.bench", "Matrix1000x50$", "-test.benchmem", "-test.benchtime", benchtime, "-test.count", count)
	cmd.Dir = filepath.Join(c.root, "generators")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out.String())
	}
	res := &generatorResult{maxRSSMiB: float64(cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss) / 1024}
	for _, line := range strings.Split(out.String(), "\n") {
		m := benchLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := strings.Fields(m[1])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				res.nsPerOp = append(res.nsPerOp, v)
			case "allocs/op":
				res.allocsPerOp = append(res.allocsPerOp, v)
			case "B/op":
				res.bytes = append(res.bytes, v)
			case "peak-heap-MiB":
				res.peakHeapMiB = append(res.peakHeapMiB, v)
			case "ns/app":
				res.nsPerApp = append(res.nsPerApp, v)
			}
		}
		res.runs++
	}
	if res.runs == 0 {
		return nil, fmt.Errorf("no benchmark result in:\n%s", out.String())
	}
	logf("  %d runs, median %.2f s/op", res.runs, median(res.nsPerOp)/1e9)
	return res, nil
}

// --- 2. hub fan-out -------------------------------------------------------

type fanoutSize struct {
	clusters, apps int
	profile        bool // capture a CPU profile of the hub during delivery
}

type fanoutResult struct {
	fanoutSize
	total                           int
	created, delivered, spokeCopies time.Duration
	profileTop                      string
	hubCPU                          float64
	rssBefore, rssAfter, peakRSS    float64
}

// benchFanout: clusters MemberClusters spread over 4 spoke apiservers
// through distinct agentNamespaces, one set of apps list elements.
func benchFanout(ctx context.Context, c config, s fanoutSize) (*fanoutResult, error) {
	spokes := []string{"spoke-1", "spoke-2", "spoke-3", "spoke-4"}
	pprofPort, err := freePort()
	if err != nil {
		return nil, err
	}
	f, err := framework.Start(ctx, framework.Options{Dir: filepath.Join(c.work, fmt.Sprintf("fanout-%d-%d", s.clusters, s.apps)), Spokes: spokes,
		ControlPlaneBin: c.cp, FlotillaBin: c.bin, HubArgs: append([]string{fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort)}, c.hubArgs...)})
	if err != nil {
		return nil, err
	}
	defer f.Stop()
	hc := f.Hub.Client
	for i := range s.clusters {
		spoke := f.Spokes[spokes[i%len(spokes)]]
		ns := fmt.Sprintf("fanout-%03d", i)
		if err := spoke.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			return nil, err
		}
		raw, err := os.ReadFile(spoke.Kubeconfig)
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("bench-%03d", i)
		if err := hc.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name + "-kubeconfig", Namespace: flotillav1.SystemNamespace}, Data: map[string][]byte{"value": raw}}); err != nil {
			return nil, err
		}
		if err := hc.Create(ctx, &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"bench": "fanout"}},
			Spec: flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: name + "-kubeconfig", Key: "value"}, AgentNamespace: ns}}); err != nil {
			return nil, err
		}
	}
	// Every cluster Ready before the clock starts.
	if err := waitFor(ctx, 3*time.Minute, "clusters Ready", func() (bool, string) {
		list := &flotillav1.MemberClusterList{}
		if err := hc.List(ctx, list, client.MatchingLabels{"bench": "fanout"}); err != nil {
			return false, err.Error()
		}
		n := 0
		for _, mc := range list.Items {
			if cnd := apimeta.FindStatusCondition(mc.Status.Conditions, flotillav1.ConditionReady); cnd != nil && cnd.Status == metav1.ConditionTrue {
				n++
			}
		}
		return n == s.clusters, fmt.Sprintf("%d/%d", n, s.clusters)
	}); err != nil {
		return nil, err
	}
	time.Sleep(3 * time.Second)
	pid := f.HubProcess.Pid()
	before, err := framework.ReadStats(pid)
	if err != nil {
		return nil, err
	}
	var elements []string
	for a := range s.apps {
		elements = append(elements, fmt.Sprintf("{app: app-%03d}", a))
	}
	set := fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: fanout, namespace: default}
spec:
  generators:
  - matrix:
      generators:
      - clusters: {selector: {matchLabels: {bench: fanout}}}
      - list: {elements: [%s]}
  template:
    metadata: {name: '{{ .name }}-{{ .app }}'}
    spec:
      source: {repoURL: 'http://127.0.0.1:1/unused.git', targetRevision: main, path: 'apps/{{ .app }}'}
      destination: {cluster: '{{ .name }}', namespace: '{{ .app }}'}
`, strings.Join(elements, ", "))
	total := s.clusters * s.apps
	logf("  %d clusters × %d apps = %d Applications", s.clusters, s.apps, total)
	start := time.Now()
	if err := f.ApplyYAML(ctx, "fanout", set); err != nil {
		return nil, err
	}
	res := &fanoutResult{fanoutSize: s, total: total, rssBefore: before.RSSMiB}
	profiled := make(chan string, 1)
	if s.profile {
		go func() { profiled <- cpuProfileTop(c, pprofPort, 10*time.Second) }()
	} else {
		profiled <- ""
	}
	var createdAt, deliveredAt, copiesAt time.Duration
	err = waitFor(ctx, 10*time.Minute, "delivered", func() (bool, string) {
		time.Sleep(400 * time.Millisecond) // with waitFor's 100ms: a list every 0.5s, light on the apiservers measured
		if copiesAt == 0 {
			n := 0
			for _, name := range spokes {
				list := &metav1.PartialObjectMetadataList{}
				list.SetGroupVersionKind(flotillav1.GroupVersion.WithKind("ApplicationList"))
				if err := f.Spokes[name].Client.List(ctx, list); err != nil {
					return false, err.Error()
				}
				for _, a := range list.Items {
					if strings.HasPrefix(a.Namespace, "fanout-") {
						n++
					}
				}
			}
			if n == total {
				copiesAt = time.Since(start)
			}
		}
		if deliveredAt == 0 {
			apps := &flotillav1.ApplicationList{}
			if err := hc.List(ctx, apps, client.InNamespace("default")); err != nil {
				return false, err.Error()
			}
			n := 0
			for _, a := range apps.Items {
				if cnd := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionDelivered); cnd != nil && cnd.Status == metav1.ConditionTrue {
					n++
				}
			}
			if createdAt == 0 && len(apps.Items) == total {
				createdAt = time.Since(start)
			}
			if n == total {
				deliveredAt = time.Since(start)
			} else {
				return false, fmt.Sprintf("%d/%d delivered", n, total)
			}
		}
		return deliveredAt != 0 && copiesAt != 0, "spoke copies missing"
	})
	if err != nil {
		return nil, err
	}
	after, err := framework.ReadStats(pid)
	if err != nil {
		return nil, err
	}
	res.created, res.delivered, res.spokeCopies = createdAt, deliveredAt, copiesAt
	res.profileTop = <-profiled
	res.hubCPU, res.rssAfter, res.peakRSS = after.CPUSeconds-before.CPUSeconds, after.RSSMiB, after.PeakRSSMiB
	logf("  hub Applications created in %s, delivered in %s, spoke copies in %s, hub %.1f CPU s, RSS %.0f→%.0f MiB (peak %.0f)", createdAt.Round(10*time.Millisecond), deliveredAt.Round(10*time.Millisecond),
		copiesAt.Round(10*time.Millisecond), res.hubCPU, res.rssBefore, res.rssAfter, res.peakRSS)
	return res, nil
}

// cpuProfileTop fetches a CPU profile of the hub and returns `go tool pprof
// -top` for it (the profile file itself stays out of the repository).
func cpuProfileTop(c config, port int, d time.Duration) string {
	path := filepath.Join(c.work, fmt.Sprintf("hub-%d.pprof", port))
	url := fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=%d", port, int(d.Seconds()))
	resp, err := http.Get(url)
	if err != nil {
		return fmt.Sprintf("(profile unavailable: %v)", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Sprintf("(profile unavailable: %v, HTTP %d)", err, resp.StatusCode)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		return err.Error()
	}
	top := exec.Command("go", "tool", "pprof", "-top", "-nodecount=15", path)
	out, err := top.CombinedOutput()
	if err != nil {
		return fmt.Sprintf("(pprof failed: %v)", err)
	}
	return string(out)
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
