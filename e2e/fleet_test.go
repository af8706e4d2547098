package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/e2e/framework"
)

// TestListGenerator2x3: a list generator with 2 clusters × 3 apps; every
// app turns Healthy on its cluster at the commit pushed.
func TestListGenerator2x3(t *testing.T) {
	f := framework.StartT(t, []string{"spoke-1", "spoke-2"})
	ctx := context.Background()
	repo, rev, err := f.SampleRepo()
	if err != nil {
		t.Fatal(err)
	}
	set := `apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: list, namespace: default}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [{cluster: spoke-1}, {cluster: spoke-2}]}
      - list: {elements: [{app: guestbook}, {app: podinfo}, {app: redis}]}
  template:
    metadata: {name: '{{ .cluster }}-{{ .app }}'}
    spec:
      source: {repoURL: ` + repo.URL + `, targetRevision: main, path: 'apps/{{ .app }}'}
      destination: {cluster: '{{ .cluster }}', namespace: '{{ .app }}'}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`
	if err := f.ApplyYAML(ctx, "list", set); err != nil {
		t.Fatal(err)
	}
	took := eventually(t, 2*time.Minute, "6 Applications Healthy at "+rev[:7], func() (bool, string) { return allHealthyAt(t, f, "default", "list", 6, rev) })
	t.Logf("2 clusters × 3 apps Healthy in %s", took)
	out, err := f.Flotilla(ctx, "status")
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out)
}
