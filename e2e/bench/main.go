// Command bench runs Flotilla's benchmark suite on real control planes (the
// e2e framework) and writes BENCHMARKS.md with one PNG per latency
// distribution. `make bench` runs it; `make bench BENCH=quick` runs a
// smaller version in a few minutes to check that the harness works.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/controlplane"
)

type config struct {
	quick      bool
	only       map[string]bool
	hubArgs    []string
	hubEnv     []string
	out, plots string
	work       string
	cp, bin    string
	root       string
	fanout     []fanoutSize
}

func main() {
	var c config
	mode := flag.String("mode", "full", "full or quick")
	flag.StringVar(&c.out, "out", "BENCHMARKS.md", "report to write")
	flag.StringVar(&c.plots, "plots", "docs/bench", "folder for the PNG plots (relative to the report)")
	keep := flag.Bool("keep", false, "keep the fleets' folders (logs) after the run")
	hubEnv := flag.String("hub-env", "", "extra flotilla-hub environment for the fan-out runs (space-separated KEY=VALUE), to try settings")
	hubArgs := flag.String("hub-args", "", "extra flotilla-hub flags for the fan-out runs (space-separated), to try settings")
	fanout := flag.String("fanout", "", "fan-out sizes to run instead of the mode's (comma-separated CLUSTERSxAPPS, e.g. 100x20)")
	only := flag.String("only", "", "run only these measures (comma-separated: generator,fanout,add,git,agent,sources,dashboard); the report is written to -out")
	flag.Parse()
	c.hubArgs, c.hubEnv = strings.Fields(*hubArgs), strings.Fields(*hubEnv)
	*keepWork = *keep
	if *only != "" {
		c.only = map[string]bool{}
		for _, m := range strings.Split(*only, ",") {
			c.only[strings.TrimSpace(m)] = true
		}
	}
	c.quick = *mode == "quick"
	for _, f := range strings.FieldsFunc(*fanout, func(r rune) bool { return r == ',' }) {
		var s fanoutSize
		if _, err := fmt.Sscanf(f, "%dx%d", &s.clusters, &s.apps); err != nil || s.clusters <= 0 || s.apps <= 0 {
			fmt.Fprintf(os.Stderr, "bench: -fanout %q: want CLUSTERSxAPPS, e.g. 100x20\n", f)
			os.Exit(2)
		}
		s.profile = true
		c.fanout = append(c.fanout, s)
	}
	ctrllog.SetLogger(logr.Discard()) // the clients' logs are not part of the report
	if err := run(c); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

var keepWork = new(bool)

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

func run(c config) error {
	start := time.Now()
	var err error
	if c.bin, err = fleettest.BuildFlotilla(); err != nil {
		return err
	}
	if c.cp, err = controlplane.Locate(); err != nil {
		return err
	}
	root, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return err
	}
	c.root = filepath.Dir(strings.TrimSpace(string(root)))
	if c.work, err = os.MkdirTemp("", "flotilla-bench-"); err != nil {
		return err
	}
	if *keepWork {
		logf("fleets' folders (logs) are kept in %s", c.work)
	} else {
		defer os.RemoveAll(c.work)
	}
	if err := os.MkdirAll(filepath.Join(filepath.Dir(c.out), c.plots), 0o755); err != nil {
		return err
	}
	r := &report{quick: c.quick}
	ctx := context.Background()

	if c.want("generator") {
		logf("1/5 generator expansion (go test -bench Matrix1000x50)")
		if r.generator, err = benchGenerator(c); err != nil {
			r.fail("generator benchmark", err)
		}
	}
	logf("2/5 hub fan-out")
	sizes := []fanoutSize{{25, 20, false}, {50, 20, false}, {100, 20, true}, {100, 100, false}}
	if c.quick {
		sizes = []fanoutSize{{10, 10, false}, {25, 20, true}}
	}
	if c.fanout != nil {
		sizes = c.fanout
	}
	for _, s := range sizes {
		if !c.want("fanout") {
			break
		}
		res, err := benchFanout(ctx, c, s)
		if err != nil {
			r.fail(fmt.Sprintf("fan-out %d×%d", s.clusters, s.apps), err)
			continue
		}
		r.fanout = append(r.fanout, res)
	}
	logf("3/5 add a cluster")
	reps := 30
	if c.quick {
		reps = 3
	}
	if c.want("add") {
		if r.addCluster, err = benchAddCluster(ctx, c, reps); err != nil {
			r.fail("add a cluster", err)
		}
	}
	logf("4/5 Git change")
	reps, gitClusters, gitApps := 10, 10, 10
	if c.quick {
		reps, gitClusters, gitApps = 1, 4, 5
	}
	r.gitClusters, r.gitApps = gitClusters, gitApps
	if c.want("git") {
		if r.git, err = benchGitChange(ctx, c, gitClusters, gitApps, reps); err != nil {
			r.fail("Git change", err)
		}
	}
	logf("5/5 agent")
	agentSizes := []int{50, 100, 200}
	if c.quick {
		agentSizes = []int{20, 50}
	}
	for _, n := range agentSizes {
		if !c.want("agent") {
			break
		}
		res, err := benchAgent(ctx, c, n, 10, false)
		if err != nil {
			r.fail(fmt.Sprintf("agent %d×10", n), err)
			continue
		}
		r.agent = append(r.agent, res)
	}
	if c.want("sources") {
		logf("6/6 sources: render time per Application (Kustomize, Helm) and an agent with Helm Applications")
		if r.render, err = benchRender(ctx, c); err != nil {
			r.fail("render time", err)
		}
		n := 100
		if c.quick {
			n = 20
		}
		if res, err := benchAgent(ctx, c, n, 10, true); err != nil {
			r.fail(fmt.Sprintf("agent %d Helm Applications", n), err)
		} else {
			r.helmAgent = res
		}
	}
	if c.want("dashboard") {
		logf("7/7 dashboard: the Fleet page at 10,000 Applications")
		clusters, sets := 100, 100
		if c.quick {
			clusters, sets = 20, 10
		}
		if r.dashboard, err = benchDashboard(ctx, c, clusters, sets); err != nil {
			r.fail("dashboard", err)
		}
	}
	r.took = time.Since(start)
	r.machine = machine()
	if err := r.write(c); err != nil {
		return err
	}
	logf("wrote %s in %s", c.out, r.took.Round(time.Second))
	if len(r.failures) > 0 {
		return fmt.Errorf("%d measures failed (listed in the report)", len(r.failures))
	}
	return nil
}

func machine() string {
	mem := ""
	if raw, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				_, _ = fmt.Sscan(strings.TrimPrefix(l, "MemTotal:"), &kb)
				mem = fmt.Sprintf("%.0f GiB RAM", kb/1024/1024)
			}
		}
	}
	cpu := ""
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "model name") {
				cpu = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	return fmt.Sprintf("%d cores (%s), %s, %s/%s, %s", runtime.NumCPU(), cpu, mem, runtime.GOOS, runtime.GOARCH, runtime.Version())
}

func (c config) want(measure string) bool { return c.only == nil || c.only[measure] }
