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
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
	"github.com/flotilla-dev/flotilla/internal/procstat"
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
		return nil, fmt.Errorf("%w\n%s", err, out)
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
		return nil, fmt.Errorf("%w\n%s", err, out.String())
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
	profileTop, apiProfileTop       string
	heapTop                         string
	hubRequests, fleetCPU           string
	hubCPU                          float64
	rssBefore, rssAfter, peakRSS    float64
}

// addedPerApp is the hub's added RSS per Application in KiB.
func (f *fanoutResult) addedPerApp() float64 {
	return (f.rssAfter - f.rssBefore) * 1024 / float64(f.total)
}

// settle is how long after delivery the hub's memory is read.
const settle = 15 * time.Second

// benchFanout: clusters MemberClusters spread over 4 spoke apiservers
// through distinct agentNamespaces, one set of apps list elements.
func benchFanout(ctx context.Context, c config, s fanoutSize) (*fanoutResult, error) {
	spokes := []string{"spoke-1", "spoke-2", "spoke-3", "spoke-4"}
	pprofPort, err := freePort()
	if err != nil {
		return nil, err
	}
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: filepath.Join(c.work, fmt.Sprintf("fanout-%d-%d", s.clusters, s.apps)), Spokes: spokes,
		ControlPlaneBin: c.cp, FlotillaBin: c.bin, HubArgs: append([]string{fmt.Sprintf("--pprof-bind-address=127.0.0.1:%d", pprofPort)}, c.hubArgs...), HubEnv: c.hubEnv})
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Stop() }()
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
	before, err := procstat.Read(pid)
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
	reqBefore, err := apiRequests(f.Hub.Config)
	if err != nil {
		return nil, err
	}
	cpuBefore := cpuByProcess(f)
	obs, err := observeFanout(ctx, f, spokes, total)
	if err != nil {
		return nil, err
	}
	defer obs.stop()
	obs.begin()
	if err := f.ApplyYAML(ctx, "fanout", set); err != nil {
		return nil, err
	}
	res := &fanoutResult{fanoutSize: s, total: total, rssBefore: before.RSSMiB}
	profiled, apiProfiled := make(chan string, 1), make(chan string, 1)
	if s.profile {
		go func() {
			profiled <- profileTop(c, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/profile?seconds=10", pprofPort), fmt.Sprintf("hub-%d.pprof", total))
		}()
		go func() {
			hc, err := rest.HTTPClientFor(f.Hub.Config)
			if err != nil {
				apiProfiled <- err.Error()
				return
			}
			apiProfiled <- profileTop(c, hc, f.Hub.URL+"/debug/pprof/profile?seconds=10", fmt.Sprintf("hub-apiserver-%d.pprof", total))
		}()
	} else {
		profiled <- ""
		apiProfiled <- ""
	}
	createdAt, deliveredAt, copiesAt := obs.wait(ctx, 10*time.Minute)
	if deliveredAt == 0 || copiesAt == 0 {
		return nil, fmt.Errorf("not delivered after 10m: %s", obs.progress())
	}
	after, err := procstat.Read(pid)
	if err != nil {
		return nil, err
	}
	// Memory is read once the burst has settled: what the hub holds for
	// these Applications, not the garbage of creating them.
	time.Sleep(settle)
	settled, err := procstat.Read(pid)
	if err != nil {
		return nil, err
	}
	res.created, res.delivered, res.spokeCopies = createdAt, deliveredAt, copiesAt
	res.fleetCPU = cpuDelta(cpuBefore, cpuByProcess(f))
	logf("  %s", res.fleetCPU)
	if reqAfter, err := apiRequests(f.Hub.Config); err == nil {
		res.hubRequests = requestDelta(reqBefore, reqAfter, float64(total)/100)
		logf("  hub apiserver requests: %s", res.hubRequests)
	}
	res.profileTop, res.apiProfileTop = <-profiled, <-apiProfiled
	if s.profile {
		res.heapTop = profileTop(c, http.DefaultClient, fmt.Sprintf("http://127.0.0.1:%d/debug/pprof/heap?gc=1", pprofPort), fmt.Sprintf("hub-heap-%d.pprof", total), "-sample_index=inuse_space")
	}
	res.hubCPU, res.rssAfter, res.peakRSS = after.CPUSeconds-before.CPUSeconds, settled.RSSMiB, settled.PeakRSSMiB
	logf("  hub Applications created in %s, delivered in %s, spoke copies in %s, hub %.1f CPU s, RSS %.0f→%.0f MiB (peak %.0f)", createdAt.Round(10*time.Millisecond), deliveredAt.Round(10*time.Millisecond),
		copiesAt.Round(10*time.Millisecond), res.hubCPU, res.rssBefore, res.rssAfter, res.peakRSS)
	return res, nil
}

// profileTop fetches a pprof profile over HTTP and returns `go tool pprof
// -top` for it (the profile file itself stays out of the repository).
func profileTop(c config, hc *http.Client, url, file string, args ...string) string {
	path := filepath.Join(c.work, file)
	resp, err := hc.Get(url)
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
	top := exec.Command("go", append(append([]string{"tool", "pprof", "-top", "-nodecount=15"}, args...), path)...)
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

// apiRequests reads apiserver_request_total from an apiserver's /metrics,
// summed per "VERB resource[/subresource]", so a report can say which
// requests a measured window cost.
func apiRequests(cfg *rest.Config) (map[string]float64, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, err
	}
	resp, err := hc.Get(cfg.Host + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	label := func(line, name string) string {
		i := strings.Index(line, name+`="`)
		if i < 0 {
			return ""
		}
		rest := line[i+len(name)+2:]
		return rest[:strings.IndexByte(rest, '"')]
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			continue
		}
		key := label(line, "verb") + " " + label(line, "resource")
		if sub := label(line, "subresource"); sub != "" {
			key += "/" + sub
		}
		out[key] += v
	}
	return out, nil
}

// delta is what grew between two readings of per-key counters, largest
// first, keys at or above min, formatted "key value" with format, and the
// total growth.
func delta(before, after map[string]float64, min float64, format string) (string, float64) {
	type kv struct {
		k string
		v float64
	}
	var rows []kv
	total := 0.0
	for k, v := range after {
		d := v - before[k]
		total += d
		if d >= min {
			rows = append(rows, kv{k, d})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].v > rows[j].v || (rows[i].v == rows[j].v && rows[i].k < rows[j].k) })
	parts := make([]string, len(rows))
	for i, r := range rows {
		parts[i] = fmt.Sprintf("%s "+format, r.k, r.v)
	}
	return strings.Join(parts, ", "), total
}

// requestDelta formats the requests made between two apiRequests readings,
// most first, leaving out kinds with fewer than min requests.
func requestDelta(before, after map[string]float64, min float64) string {
	out, _ := delta(before, after, min, "%.0f")
	return out
}

// cpuByProcess reads the CPU seconds of every process of a fleet, grouped
// by role: the spokes' components are summed across spokes.
func cpuByProcess(f *localfleet.Fleet) map[string]float64 {
	out := map[string]float64{}
	for _, p := range f.Processes() {
		pid := p.Pid()
		if pid == 0 {
			continue
		}
		st, err := procstat.Read(pid)
		if err != nil {
			continue
		}
		name := p.Name
		if strings.HasPrefix(name, "spoke-") {
			name = "spokes' " + name[strings.IndexByte(name, '/')+1:]
		}
		out[name] += st.CPUSeconds
	}
	return out
}

// cpuDelta formats where CPU time went between two cpuByProcess readings.
func cpuDelta(before, after map[string]float64) string {
	out, total := delta(before, after, 0.05, "%.1f")
	return fmt.Sprintf("%.1f CPU s in all: %s", total, out)
}

// fanoutObserver watches (rather than lists: listing thousands of objects
// twice a second was a visible part of the load measured) the hub
// Applications and the spoke copies, and notes when each count is reached.
type fanoutObserver struct {
	total  int
	start  time.Time
	cancel context.CancelFunc

	mu                               sync.Mutex
	created, delivered, copies       map[string]bool
	createdAt, deliveredAt, copiesAt time.Duration
	done                             chan struct{}
}

func observeFanout(ctx context.Context, f *localfleet.Fleet, spokes []string, total int) (*fanoutObserver, error) {
	ctx, cancel := context.WithCancel(ctx)
	o := &fanoutObserver{total: total, cancel: cancel, created: map[string]bool{}, delivered: map[string]bool{}, copies: map[string]bool{}, done: make(chan struct{})}
	hub, err := client.NewWithWatch(f.Hub.Config, client.Options{Scheme: localfleet.Scheme()})
	if err != nil {
		cancel()
		return nil, err
	}
	go o.watch(ctx, hub, func() client.ObjectList { return &flotillav1.ApplicationList{} }, []client.ListOption{client.InNamespace("default")}, func(t watch.EventType, obj runtime.Object) {
		a, ok := obj.(*flotillav1.Application)
		if !ok {
			return
		}
		o.mu.Lock()
		defer o.mu.Unlock()
		if t == watch.Deleted {
			delete(o.created, a.Name)
			delete(o.delivered, a.Name)
			return
		}
		o.created[a.Name] = true
		cnd := apimeta.FindStatusCondition(a.Status.Conditions, flotillav1.ConditionDelivered)
		if cnd != nil && cnd.Status == metav1.ConditionTrue {
			o.delivered[a.Name] = true
		} else {
			delete(o.delivered, a.Name)
		}
		o.note()
	})
	for _, name := range spokes {
		sc, err := client.NewWithWatch(f.Spokes[name].Config, client.Options{Scheme: localfleet.Scheme()})
		if err != nil {
			cancel()
			return nil, err
		}
		go o.watch(ctx, sc, func() client.ObjectList {
			l := &metav1.PartialObjectMetadataList{}
			l.SetGroupVersionKind(flotillav1.GroupVersion.WithKind("ApplicationList"))
			return l
		}, nil, func(t watch.EventType, obj runtime.Object) {
			m, ok := obj.(*metav1.PartialObjectMetadata)
			if !ok || !strings.HasPrefix(m.Namespace, "fanout-") {
				return
			}
			o.mu.Lock()
			defer o.mu.Unlock()
			key := name + "/" + m.Namespace + "/" + m.Name
			if t == watch.Deleted {
				delete(o.copies, key)
			} else {
				o.copies[key] = true
			}
			o.note()
		})
	}
	return o, nil
}

// watch runs one watch until ctx ends, restarting it if the apiserver
// closes it (events are idempotent on the observer's sets).
func (o *fanoutObserver) watch(ctx context.Context, c client.WithWatch, list func() client.ObjectList, opts []client.ListOption, fn func(watch.EventType, runtime.Object)) {
	for ctx.Err() == nil {
		w, err := c.Watch(ctx, list(), opts...)
		if err != nil {
			time.Sleep(200 * time.Millisecond)
			continue
		}
		for ev := range w.ResultChan() {
			if ev.Type != watch.Error && ev.Type != watch.Bookmark {
				fn(ev.Type, ev.Object)
			}
		}
		w.Stop()
	}
}

// note records the times the counts are reached; callers hold mu.
func (o *fanoutObserver) note() {
	if o.start.IsZero() {
		return
	}
	now := time.Since(o.start)
	if o.createdAt == 0 && len(o.created) == o.total {
		o.createdAt = now
	}
	if o.deliveredAt == 0 && len(o.delivered) == o.total {
		o.deliveredAt = now
	}
	if o.copiesAt == 0 && len(o.copies) == o.total {
		o.copiesAt = now
	}
	if o.deliveredAt != 0 && o.copiesAt != 0 {
		select {
		case <-o.done:
		default:
			close(o.done)
		}
	}
}

func (o *fanoutObserver) wait(ctx context.Context, timeout time.Duration) (created, delivered, copies time.Duration) {
	select {
	case <-o.done:
	case <-time.After(timeout):
	case <-ctx.Done():
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.createdAt, o.deliveredAt, o.copiesAt
}

func (o *fanoutObserver) progress() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return fmt.Sprintf("%d created, %d delivered, %d spoke copies of %d", len(o.created), len(o.delivered), len(o.copies), o.total)
}

func (o *fanoutObserver) stop() { o.cancel() }

// begin starts the clock.
func (o *fanoutObserver) begin() time.Time {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.start = time.Now()
	return o.start
}
