package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/fleet/dashboard"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

type dashboardResult struct {
	apps, clusters, sets       int
	firstRead                  time.Duration
	serverP50, serverP90       float64 // ms
	pageBytes                  int
	paintP50, loadP50, loadP90 float64 // ms
}

// benchDashboard: sets × clusters Applications (objects with statuses in
// a fresh hub apiserver; no controller runs), then the Fleet page's server
// time and Chromium's first contentful paint.
func benchDashboard(ctx context.Context, c config, clusters, sets int) (*dashboardResult, error) {
	f, err := localfleet.Start(ctx, localfleet.Options{Dir: filepath.Join(c.work, "dashboard"), ControlPlaneBin: c.cp, FlotillaBin: c.bin})
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Stop() }()
	if err := f.HubProcess.Stop(10 * time.Second); err != nil { // the objects alone are measured
		return nil, err
	}
	cfg := rest.CopyConfig(f.Hub.Config)
	cfg.QPS, cfg.Burst = -1, 0
	hc, err := client.New(cfg, client.Options{Scheme: localfleet.Scheme()})
	if err != nil {
		return nil, err
	}
	healths := []flotillav1.HealthStatusCode{flotillav1.HealthHealthy, flotillav1.HealthHealthy, flotillav1.HealthHealthy, flotillav1.HealthProgressing, flotillav1.HealthDegraded}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for i := range clusters {
		g.Go(func() error {
			return hc.Create(gctx, &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("cluster-%03d", i), Labels: map[string]string{"env": []string{"prod", "staging"}[i%2]}},
				Spec: flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: "none"}}})
		})
	}
	for s := range sets {
		g.Go(func() error {
			set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("set-%03d", s)}}
			if err := yaml.Unmarshal([]byte(`[{clusters: {}}]`), &set.Spec.Generators); err != nil {
				return err
			}
			set.Spec.Template.Metadata.Name = "{{ .name }}"
			set.Spec.Template.Spec.Source.RepoURL = "https://git.example/deploy.git"
			set.Spec.Template.Spec.Destination.Cluster = "{{ .name }}"
			return hc.Create(gctx, set)
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	logf("  writing %d Applications with statuses", clusters*sets)
	g, gctx = errgroup.WithContext(ctx)
	g.SetLimit(32)
	for s := range sets {
		for i := range clusters {
			g.Go(func() error {
				a := &flotillav1.Application{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: fmt.Sprintf("set-%03d-cluster-%03d", s, i),
					Labels: map[string]string{flotillav1.LabelApplicationSet: fmt.Sprintf("set-%03d", s)}},
					Spec: flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: "https://github.com/example/deploy.git", Path: "apps/x"},
						Destination: flotillav1.ApplicationDestination{Cluster: fmt.Sprintf("cluster-%03d", i), Namespace: "x"}}}
				if err := hc.Create(gctx, a); err != nil {
					return err
				}
				a.Status.Health = flotillav1.HealthStatus{Status: healths[(s+i)%len(healths)], Message: "Deployment x: 1 of 1 replicas available"}
				a.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"}
				return hc.Status().Update(gctx, a)
			})
		}
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	srv, err := dashboard.New(dashboard.Options{Local: f.Hub.Config, Who: "bench"})
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	sctx, stop := context.WithCancel(ctx)
	defer stop()
	go func() { _ = srv.Serve(sctx, ln) }()
	url := "http://" + ln.Addr().String() + "/"
	res := &dashboardResult{apps: clusters * sets, clusters: clusters, sets: sets}
	get := func() (time.Duration, int, error) {
		start := time.Now()
		resp, err := http.Get(url)
		if err != nil {
			return 0, 0, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return 0, 0, fmt.Errorf("GET /: %s", resp.Status)
		}
		return time.Since(start), len(body), err
	}
	if res.firstRead, _, err = get(); err != nil { // starts the watches: the view of the whole fleet
		return nil, err
	}
	var server []float64
	for range 20 {
		d, n, err := get()
		if err != nil {
			return nil, err
		}
		server = append(server, float64(d.Microseconds())/1000)
		res.pageBytes = n
	}
	res.serverP50, res.serverP90 = median(server), quantile(server, 0.9)
	bctx, cancel, err := fleettest.StartChromium(ctx, filepath.Join(c.work, "chromium"))
	if err != nil {
		return nil, err
	}
	defer cancel()
	var paint, load []float64
	for range 10 {
		if err := chromedp.Do(bctx, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("table.grid"))); err != nil {
			return nil, err
		}
		fcp, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`(performance.getEntriesByName("first-contentful-paint")[0] || {startTime: -1}).startTime`))
		if err != nil {
			return nil, err
		}
		le, err := chromedp.Run(bctx, chromedp.Evaluate[float64](`(function(){var n = performance.getEntriesByType("navigation")[0]; return n ? n.loadEventEnd : -1})()`))
		if err != nil {
			return nil, err
		}
		paint, load = append(paint, fcp), append(load, le)
	}
	res.paintP50, res.loadP50, res.loadP90 = median(paint), median(load), quantile(load, 0.9)
	logf("  %d Applications: first read %s; Fleet page p50 %.0f ms (%d KiB); first contentful paint p50 %.0f ms, load p50 %.0f ms",
		res.apps, res.firstRead.Round(time.Millisecond), res.serverP50, res.pageBytes>>10, res.paintP50, res.loadP50)
	return res, nil
}
