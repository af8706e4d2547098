package hub_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// BenchmarkDelivery50x20 measures the time from creating an ApplicationSet
// (50 clusters × 20 apps = 1,000 Applications) to every hub Application
// Delivered, with the 50 MemberClusters spread over 2 spoke apiservers
// through distinct agent namespaces. Run: go test -run XXX -bench Delivery -benchtime 1x ./fleet/hub/
func BenchmarkDelivery50x20(b *testing.B) {
	const clusters, apps = 50, 20
	f := startFleetWith(b, []testenv.Option{}, "spoke-a", "spoke-b") // non-nil: register nothing by default
	spokeNames := []string{"spoke-a", "spoke-b"}
	kubeconfigs := map[string][]byte{}
	for _, s := range spokeNames {
		kubeconfigs[s] = f.spokes[s].UserKubeconfig(b, "flotilla-hub")
	}
	for i := range clusters {
		s := spokeNames[i%2]
		f.registerIn(b, fmt.Sprintf("c%02d", i), f.spokes[s], fmt.Sprintf("agent-%02d", i), kubeconfigs[s], map[string]string{"env": "prod"})
	}
	f.startHub(b, hub.Options{ClientLimits: kubeconfig.Limits{Timeout: 10 * time.Second, QPS: 50, Burst: 100}})
	hc := f.hub.Client
	ctx := b.Context()
	eventually(b, 60*time.Second, "all clusters Ready", func() (bool, string) {
		var list flotillav1.MemberClusterList
		require.NoError(b, hc.List(ctx, &list))
		ready := 0
		for _, mc := range list.Items {
			if condition(mc.Status.Conditions, flotillav1.ConditionReady).Status == metav1.ConditionTrue {
				ready++
			}
		}
		return ready == clusters, fmt.Sprint(ready)
	})

	var elements []string
	for i := range apps {
		elements = append(elements, fmt.Sprintf("app%02d", i))
	}
	iteration := 0
	for b.Loop() {
		iteration++
		name := fmt.Sprintf("fleet-%d", iteration)
		start := time.Now()
		require.NoError(b, hc.Create(ctx, appSet(name, elements...)))
		var firstAll time.Duration
		eventually(b, 5*time.Minute, "all Delivered", func() (bool, string) {
			var list flotillav1.ApplicationList
			require.NoError(b, hc.List(ctx, &list, client.InNamespace("default"), client.MatchingLabels{flotillav1.LabelApplicationSet: name}))
			delivered := 0
			for _, a := range list.Items {
				if condition(a.Status.Conditions, flotillav1.ConditionDelivered).Status == metav1.ConditionTrue {
					delivered++
				}
			}
			if len(list.Items) == clusters*apps && firstAll == 0 {
				firstAll = time.Since(start)
			}
			return delivered == clusters*apps, fmt.Sprintf("%d/%d delivered", delivered, len(list.Items))
		})
		elapsed := time.Since(start)
		var mu sync.Mutex
		total := 0
		var wg sync.WaitGroup
		for _, s := range spokeNames {
			wg.Go(func() {
				var list flotillav1.ApplicationList
				require.NoError(b, f.spokes[s].Client.List(ctx, &list))
				mu.Lock()
				total += len(list.Items)
				mu.Unlock()
			})
		}
		wg.Wait()
		require.Equal(b, clusters*apps*iteration, total, "spoke copies")
		b.ReportMetric(elapsed.Seconds(), "s-to-all-delivered")
		b.ReportMetric(firstAll.Seconds(), "s-to-all-hub-apps")
		b.Logf("%d Applications: all hub Applications after %s, all Delivered after %s", clusters*apps, firstAll.Round(time.Millisecond), elapsed.Round(time.Millisecond))
	}
}
