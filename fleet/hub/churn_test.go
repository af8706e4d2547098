package hub_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
)

// seriesOf counts the hub's metric series labelled by set or cluster.
func seriesOf(t *testing.T) int {
	t.Helper()
	families, err := crmetrics.Registry.Gather()
	require.NoError(t, err)
	n := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), "flotilla_") {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "cluster" || l.GetName() == "applicationset" {
					n++
					break
				}
			}
		}
	}
	return n
}

// TestChurnLeavesNothingBehind: 1,000 ApplicationSets (one Application
// each) on 1,000 MemberClusters come and go; what the hub keeps in memory
// per set, Application and cluster, and its metric series, return to where
// they started.
func TestChurnLeavesNothingBehind(t *testing.T) {
	const n = 1000
	f := startFleet(t)
	ctx := t.Context()
	hc := f.hub.Client
	stop := f.startHub(t, hub.Options{GitTimeout: 2 * time.Second, ProbeInterval: time.Minute})
	defer stop()
	time.Sleep(time.Second) // the controllers' caches are up
	before, seriesBefore := f.running.Tracked(), seriesOf(t)

	for i := range n {
		name := fmt.Sprintf("churn-%04d", i)
		require.NoError(t, hc.Create(ctx, &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: flotillav1.MemberClusterSpec{KubeconfigSecretRef: flotillav1.SecretKeyReference{Name: name + "-kubeconfig"}, AgentNamespace: ns}}))
		set := &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"}}
		require.NoError(t, yaml.Unmarshal([]byte(`[{list: {elements: [{cluster: `+name+`}]}}]`), &set.Spec.Generators))
		set.Spec.Template = flotillav1.ApplicationTemplate{
			Metadata: flotillav1.ApplicationTemplateMeta{Name: "{{ .cluster }}-app"},
			Spec: flotillav1.ApplicationSpec{Source: flotillav1.ApplicationSource{RepoURL: "https://git.example/deploy.git", Path: "app"},
				Destination: flotillav1.ApplicationDestination{Cluster: "{{ .cluster }}"}},
		}
		require.NoError(t, hc.Create(ctx, set))
	}
	eventually(t, 3*time.Minute, "every set and cluster tracked", func() (bool, string) {
		got := f.running.Tracked()
		return got["applicationset"] >= n && got["delivery.written"] >= n && got["clusters"] >= n, fmt.Sprint(got)
	})
	t.Logf("tracked with %d sets and clusters: %v; metric series %d (from %d)", n, f.running.Tracked(), seriesOf(t), seriesBefore)

	// Clusters first: their Applications' delivery finalizers then have
	// nothing to wait for. envtest runs no garbage collector: the sets'
	// Applications are deleted by hand.
	require.NoError(t, hc.DeleteAllOf(ctx, &flotillav1.MemberCluster{}))
	require.NoError(t, hc.DeleteAllOf(ctx, &flotillav1.ApplicationSet{}, client.InNamespace("default")))
	require.NoError(t, hc.DeleteAllOf(ctx, &flotillav1.Application{}, client.InNamespace("default")))
	eventually(t, 3*time.Minute, "back to the start", func() (bool, string) {
		got, series := f.running.Tracked(), seriesOf(t)
		for k, v := range got {
			if v != before[k] {
				return false, fmt.Sprintf("%s: %d, was %d (%v); series %d, was %d", k, v, before[k], got, series, seriesBefore)
			}
		}
		return series == seriesBefore, fmt.Sprintf("series %d, was %d", series, seriesBefore)
	})
}
