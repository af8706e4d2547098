package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/controlplane"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

// startDashboard runs `flotilla dashboard` against the fleet and returns its URL.
func startDashboard(t *testing.T, f *localfleet.Fleet) string {
	t.Helper()
	bin, err := fleettest.BuildFlotilla()
	check(t, err)
	port, err := controlplane.FreePort()
	check(t, err)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cmd := exec.Command(filepath.Join(bin, "flotilla"), "dashboard", "--address", addr)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+f.Kubeconfig)
	out, err := os.Create(filepath.Join(f.LogDir, "dashboard.log"))
	check(t, err)
	cmd.Stdout, cmd.Stderr = out, out
	check(t, cmd.Start())
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		out.Close()
	})
	eventually(t, 30*time.Second, "the dashboard prints its URL", func() (bool, string) {
		raw, _ := os.ReadFile(out.Name())
		return strings.Contains(string(raw), "http://"+addr+"/"), string(raw)
	})
	return "http://" + addr + "/"
}

// js evaluates an expression in the page.
func js[T any](t *testing.T, ctx context.Context, expr string) T {
	t.Helper()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	check(t, err)
	return v
}

// screenshot saves the page as docs/dashboard/NAME.png when
// FLOTILLA_SCREENSHOTS names a folder (to refresh the README's), else into
// the test's artifacts.
func screenshot(t *testing.T, ctx context.Context, f *localfleet.Fleet, name string) {
	t.Helper()
	dir := os.Getenv("FLOTILLA_SCREENSHOTS")
	if dir == "" {
		dir = f.LogDir
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	check(t, err)
	check(t, os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644))
}

// Scenario: the dashboard in a real browser. Every set × cluster cell
// turns Healthy; a bad commit turns the guestbook cells Degraded without a
// reload, and the Application page shows the apiserver's message; the fix
// turns them Healthy again, still without a reload.
func TestDashboard(t *testing.T) {
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev, err := f.SampleRepo()
	check(t, err)
	clusters := []string{"spoke-1", "spoke-2"}
	for _, app := range threeApps {
		check(t, f.ApplyYAML(ctx, app, listSet(app, repo.URL, clusters, []string{app}, "")))
	}
	url := startDashboard(t, f)
	browser := fleettest.Chromium(t)
	tab, cancel := context.WithTimeout(browser, 4*time.Minute)
	defer cancel()
	check(t, chromedp.Do(tab, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("table.grid"))))
	loaded := js[float64](t, tab, "window.flotillaLoadedAt")
	cells := func(sel string) int { return js[int](t, tab, fmt.Sprintf("document.querySelectorAll(%q).length", sel)) }
	eventually(t, 3*time.Minute, "all 6 cells Healthy in the browser", func() (bool, string) {
		return cells("td.cell.h-Healthy") == 6, fmt.Sprintf("%d Healthy cells", cells("td.cell.h-Healthy"))
	})
	healthyAt := rev[:7]
	if got := js[string](t, tab, `document.querySelector("tr[data-set='default/guestbook'] td.cell a").textContent`); got != healthyAt {
		t.Fatalf("the guestbook cell shows commit %q, want %s", got, healthyAt)
	}
	screenshot(t, tab, f, "fleet")

	// A bad commit: the guestbook Deployment can never progress.
	files := localfleet.SampleFiles([]string{"guestbook"}, "v2")
	files["apps/guestbook/deployment.yaml"] = strings.Replace(files["apps/guestbook/deployment.yaml"], "  replicas: 2\n",
		"  replicas: 2\n  progressDeadlineSeconds: 5\n", 1)
	files["apps/guestbook/deployment.yaml"] = strings.Replace(files["apps/guestbook/deployment.yaml"], "    spec:\n",
		"    spec:\n      nodeSelector: {flotilla.dev/no-such-node: \"true\"}\n", 1)
	_, err = repo.Commit(files, "guestbook: a Deployment that cannot progress")
	check(t, err)
	check(t, f.ApplyYAML(ctx, "guestbook", strings.Replace(listSet("guestbook", repo.URL, clusters, []string{"guestbook"}, ""),
		"metadata: {name: guestbook, namespace: default}", "metadata: {name: guestbook, namespace: default, annotations: {flotilla.dev/refresh: bad}}", 1)))
	eventually(t, 2*time.Minute, "the guestbook cells Degraded without a reload", func() (bool, string) {
		n := cells("tr[data-set='default/guestbook'] td.cell.h-Degraded")
		return n == 2, fmt.Sprintf("%d Degraded guestbook cells", n)
	})
	if now := js[float64](t, tab, "window.flotillaLoadedAt"); now != loaded {
		t.Fatal("the fleet page reloaded")
	}
	if n := cells("td.cell.h-Healthy"); n != 4 {
		t.Fatalf("the other sets' cells should stay Healthy: %d", n)
	}

	// Its Application page: the apiserver's words, live.
	check(t, chromedp.Do(tab, chromedp.Click(chromedp.CSS(`tr[data-set='default/guestbook'] td.cell a`)), chromedp.WaitVisible(chromedp.CSS("#app-health"))))
	loaded = js[float64](t, tab, "window.flotillaLoadedAt")
	eventually(t, 30*time.Second, "the Application page shows the progress deadline", func() (bool, string) {
		text := js[string](t, tab, "document.getElementById('content').innerText")
		return strings.Contains(text, "Degraded") && strings.Contains(strings.ToLower(text), "progress deadline"), text
	})
	screenshot(t, tab, f, "application")

	// The fix: Healthy again, without a reload.
	rev3, err := repo.Commit(localfleet.SampleFiles([]string{"guestbook"}, "v3"), "guestbook: fixed")
	check(t, err)
	check(t, f.ApplyYAML(ctx, "guestbook", strings.Replace(listSet("guestbook", repo.URL, clusters, []string{"guestbook"}, ""),
		"metadata: {name: guestbook, namespace: default}", "metadata: {name: guestbook, namespace: default, annotations: {flotilla.dev/refresh: fixed}}", 1)))
	eventually(t, 2*time.Minute, "the Application page Healthy at the fix without a reload", func() (bool, string) {
		text := js[string](t, tab, "document.getElementById('content').innerText")
		return js[string](t, tab, "document.getElementById('app-health').textContent") == "Healthy" && strings.Contains(text, rev3), text
	})
	if now := js[float64](t, tab, "window.flotillaLoadedAt"); now != loaded {
		t.Fatal("the Application page reloaded")
	}

	// The other pages, for the README.
	for _, p := range []struct{ path, name, wait string }{{"sets/default/guestbook", "set", "h1"}, {"clusters/spoke-1", "cluster", "h1"}} {
		check(t, chromedp.Do(tab, chromedp.Navigate(url+p.path), chromedp.WaitVisible(chromedp.CSS(p.wait))))
		screenshot(t, tab, f, p.name)
	}
	check(t, chromedp.Do(tab, chromedp.Navigate(url), chromedp.WaitVisible(chromedp.CSS("table.grid"))))
	eventually(t, time.Minute, "all 6 cells Healthy again", func() (bool, string) {
		return cells("td.cell.h-Healthy") == 6, fmt.Sprintf("%d Healthy cells", cells("td.cell.h-Healthy"))
	})
}
