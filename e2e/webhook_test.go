package e2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/fleet/hub/webhook"
	"github.com/flotilla-dev/flotilla/internal/controlplane"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

// Scenario: a signed push webhook starts a new commit's rollout at once.
// The agents poll Git hourly and the set has no Git generator, so polling
// cannot be what moved it; a badly signed push changes nothing.
func TestWebhookStartsRollout(t *testing.T) {
	port, err := controlplane.FreePort()
	check(t, err)
	f := fleettest.Start(t, []string{"spoke-1", "spoke-2"}, func(o *localfleet.Options) {
		o.HubArgs = append(o.HubArgs, fmt.Sprintf("--webhook-bind-address=127.0.0.1:%d", port))
		o.AgentArgs = append(o.AgentArgs, "--sync-interval=1h")
	})
	ctx := context.Background()
	check(t, f.Hub.Client.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: flotillav1.SystemNamespace, Name: webhook.SecretName},
		StringData: map[string]string{"github": "e2e-hook-secret"}}))
	repo, rev1, err := f.SampleRepo()
	check(t, err)
	check(t, f.ApplyYAML(ctx, "fleet", listSet("fleet", repo.URL, []string{"spoke-1", "spoke-2"}, threeApps, "")))
	eventually(t, 2*time.Minute, "v1 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev1) })

	rev2 := bumpImages(t, repo, threeApps, "v2")
	moved := func() int {
		n := 0
		for _, a := range appsOf(t, f, "default", "fleet") {
			if a.Status.Sync.Revision == rev2 {
				n++
			}
		}
		return n
	}
	body := fmt.Appendf(nil, `{"ref":"refs/heads/main","repository":{"clone_url":%q}}`, repo.URL)
	send := func(signature string) int {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("http://127.0.0.1:%d%s", port, webhook.Path), bytes.NewReader(body))
		check(t, err)
		req.Header.Set("X-GitHub-Event", "push")
		req.Header.Set("X-Hub-Signature-256", "sha256="+signature)
		resp, err := http.DefaultClient.Do(req)
		check(t, err)
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(webhook.Sign([]byte("not-the-secret"), body)); code != http.StatusUnauthorized {
		t.Fatalf("a badly signed push got %d, want 401", code)
	}
	time.Sleep(5 * time.Second) // what must not happen: neither polling nor the refused push moves anything
	if n := moved(); n != 0 {
		t.Fatalf("%d Applications moved to %s without a (valid) webhook", n, rev2[:7])
	}
	start := time.Now()
	if code := send(webhook.Sign([]byte("e2e-hook-secret"), body)); code != http.StatusAccepted {
		t.Fatalf("a signed push got %d, want 202", code)
	}
	first := eventually(t, 30*time.Second, "the first Application at the pushed commit", func() (bool, string) {
		return moved() > 0, fmt.Sprintf("%d moved", moved())
	})
	t.Logf("rollout of %s started %s after the webhook", rev2[:7], first.Round(10*time.Millisecond))
	if first > 3*time.Second {
		t.Fatalf("the rollout started %s after the webhook, want under 3 s", first)
	}
	eventually(t, 2*time.Minute, "v2 everywhere", func() (bool, string) { return allHealthyAt(t, f, "default", "fleet", 6, rev2) })
	t.Logf("every Application Healthy at %s %s after the webhook", rev2[:7], time.Since(start).Round(100*time.Millisecond))
}
