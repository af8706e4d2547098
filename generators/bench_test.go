package generators_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/generators"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/templates"
)

// BenchmarkMatrix1000x50 expands a matrix of 1,000 clusters × 50 git
// directories (50,000 Applications) from a real Git repository served over
// HTTP, renders every Application through the template and validates it.
// Besides ns/op and allocs/op it reports peak heap in use (MiB) and the
// cost per Application.
func BenchmarkMatrix1000x50(b *testing.B) {
	srv := gittest.New(b)
	repo := srv.Repo(b, "deploy")
	files := map[string]string{}
	for i := range 50 {
		files[fmt.Sprintf("apps/app-%02d/kustomization.yaml", i)] = "resources: []\n"
	}
	repo.MustCommit(b, files, "50 apps")

	clusters := make(generators.StaticClusters, 1000)
	for i := range clusters {
		clusters[i] = flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{
			Name:   fmt.Sprintf("cluster-%04d", i),
			Labels: map[string]string{"env": []string{"prod", "staging"}[i%2], "region": []string{"eu", "us", "ap"}[i%3]},
		}}
	}
	cache, err := git.New(git.Options{AllowLoopback: true, Dir: b.TempDir()})
	require.NoError(b, err)
	engine := generators.New(generators.Options{Clusters: clusters, Git: generators.GitCache{Cache: cache}, MaxParams: 100000})

	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "fleet", Namespace: "team-a", UID: "u"}}
	set.Spec.Generators = gens(b, `[{matrix: {generators: [{clusters: {}}, {git: {repoURL: `+repo.URL+`, directories: [{path: 'apps/*'}]}}]}}]`)
	set.Spec.Template = flotillav1.ApplicationTemplate{
		Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .name }}-{{ .path.basename }}", Labels: map[string]string{"env": "{{ .metadata.labels.env }}"}},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: repo.URL, TargetRevision: "main", Path: "{{ .path.path }}/overlays/{{ .metadata.labels.env }}"},
			Destination: flotillav1.ApplicationDestination{Cluster: "{{ .name }}", Namespace: "{{ .path.basenameNormalized }}"},
			SyncPolicy:  &flotillav1.SyncPolicy{Automated: &flotillav1.AutomatedSyncPolicy{Prune: true, SelfHeal: true}, SyncOptions: []string{"CreateNamespace=true"}},
		},
	}

	var peak uint64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		// Sample every 5 ms: ReadMemStats stops the world, so a tight loop
		// would measure itself.
		var ms runtime.MemStats
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak {
				peak = ms.HeapInuse
			}
		}
	}()

	b.ReportAllocs()
	b.ResetTimer()
	var n int
	for b.Loop() {
		apps, err := engine.Applications(b.Context(), set)
		if err != nil {
			b.Fatal(err)
		}
		n = len(apps)
	}
	b.StopTimer()
	close(stop)
	<-done
	if n != 50000 {
		b.Fatalf("got %d Applications, want 50000", n)
	}
	b.ReportMetric(float64(peak)/(1<<20), "peak-heap-MiB")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/app")
}

// BenchmarkRender measures one Application render from a compiled template.
func BenchmarkRender(b *testing.B) {
	set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "s", Namespace: "ns"}}
	set.Spec.Template = flotillav1.ApplicationTemplate{
		Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .name }}-guestbook"},
		Spec: flotillav1.ApplicationSpec{
			Source:      flotillav1.ApplicationSource{RepoURL: "https://git.example/r.git", Path: "apps/{{ .metadata.labels.env }}"},
			Destination: flotillav1.ApplicationDestination{Cluster: "{{ .name }}"},
		},
	}
	tmpl, err := templates.Compile(set)
	require.NoError(b, err)
	params := generators.ClusterParams(&flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: "prod-eu-1", Labels: map[string]string{"env": "prod"}}})
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tmpl.Render(params); err != nil {
			b.Fatal(err)
		}
	}
}
