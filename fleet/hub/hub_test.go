package hub_test

import (
	"fmt"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub"
	"github.com/flotilla-dev/flotilla/fleet/hub/delivery"
)

// agentReports writes a spoke copy's status as an agent does after
// processing it: at its generation, with Synced and Healthy conditions.
func agentReports(t *testing.T, c client.Client, name string, health flotillav1.HealthStatus) {
	t.Helper()
	spoke := &flotillav1.Application{}
	require.NoError(t, c.Get(t.Context(), types.NamespacedName{Namespace: ns, Name: name}, spoke))
	spoke.Status.ObservedGeneration = spoke.Generation
	spoke.Status.Sync = flotillav1.SyncStatus{Status: flotillav1.SyncStatusSynced, Revision: "1a2b3c"}
	spoke.Status.Health = health
	spoke.Status.DriftCorrections = 2
	healthy := metav1.ConditionTrue
	if health.Status != flotillav1.HealthHealthy {
		healthy = metav1.ConditionFalse
	}
	now := metav1.Now()
	spoke.Status.Conditions = []metav1.Condition{
		{Type: flotillav1.ConditionSynced, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonSynced, Message: "1 objects at 1a2b3c", ObservedGeneration: spoke.Generation, LastTransitionTime: now},
		{Type: flotillav1.ConditionHealthy, Status: healthy, Reason: string(health.Status), Message: health.Message, ObservedGeneration: spoke.Generation, LastTransitionTime: now},
	}
	require.NoError(t, c.Status().Update(t.Context(), spoke))
}

// TestHubDeliversToSpokes: one hub, two real spoke apiservers and a spoke
// that hangs. A set yields Applications that land on the right spokes; the
// hung spoke is reported and does not hold the others back; status written
// on a spoke shows up aggregated on the hub; a removed element is deleted
// from its spoke; a generator error changes nothing; a hub restart
// rewrites nothing.
func TestHubDeliversToSpokes(t *testing.T) {
	outer := t // the restarted hub must outlive its subtest
	f := startFleet(t, "east", "west")
	ctx := t.Context()
	hc := f.hub.Client
	f.addCluster(t, "hung", kubeconfigFor(blackhole(t)), map[string]string{"env": "prod"})
	stop := f.startHub(t, hub.Options{GitTimeout: 2 * time.Second})

	set := appSet("guestbook", "web", "api")
	require.NoError(t, hc.Create(ctx, set))

	start := time.Now()
	for name, spoke := range f.spokes {
		eventually(t, 30*time.Second, "Applications on spoke "+name, func() (bool, string) {
			apps := spokeApps(t, spoke.Client)
			return len(apps) == 2, strings.Join(keys(apps), ",")
		})
		apps := spokeApps(t, spoke.Client)
		for _, app := range []string{"web", "api"} {
			got, ok := apps[delivery.SpokeName("default", name+"-"+app)]
			require.True(t, ok, "spoke %s lacks %s: %v", name, app, keys(apps))
			assert.Equal(t, name, got.Spec.Destination.Cluster)
			assert.Equal(t, "apps/"+app, got.Spec.Source.Path)
			assert.Equal(t, "default", got.Annotations[flotillav1.AnnotationHubNamespace])
		}
	}
	t.Logf("2 spokes × 2 apps delivered in %s (with a hung third spoke)", time.Since(start).Round(time.Millisecond))

	t.Run("the hung spoke is reported, not waited for", func(t *testing.T) {
		eventually(t, 30*time.Second, "Delivered=False on hung apps", func() (bool, string) {
			app := &flotillav1.Application{}
			if err := hc.Get(ctx, key("hung-web"), app); err != nil {
				return false, err.Error()
			}
			c := condition(app.Status.Conditions, flotillav1.ConditionDelivered)
			return c.Status == metav1.ConditionFalse && c.Reason == "ClusterUnreachable", c.Reason + ": " + c.Message
		})
		eventually(t, 10*time.Second, "Ready says why, Reconciling (not Stalled) on hung apps", func() (bool, string) {
			app := &flotillav1.Application{}
			require.NoError(t, hc.Get(ctx, key("hung-web"), app))
			ready, rec := condition(app.Status.Conditions, flotillav1.ConditionReady), condition(app.Status.Conditions, flotillav1.ConditionReconciling)
			return ready.Status == metav1.ConditionFalse && ready.Reason == flotillav1.ReasonClusterUnreachable && rec.Status == metav1.ConditionTrue,
				ready.Reason + "/" + string(rec.Status)
		})
		eventually(t, 30*time.Second, "hung cluster not Ready", func() (bool, string) {
			mc := &flotillav1.MemberCluster{}
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "hung"}, mc))
			ready := condition(mc.Status.Conditions, flotillav1.ConditionReady)
			assert.NotContains(t, ready.Message, "super-secret-token-value")
			return ready.Status == metav1.ConditionFalse && ready.Reason == "Unreachable", ready.Reason + ": " + ready.Message
		})
	})

	t.Run("member clusters are probed with least privilege", func(t *testing.T) {
		eventually(t, 20*time.Second, "east Ready", func() (bool, string) {
			mc := &flotillav1.MemberCluster{}
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "east"}, mc))
			ready, creds := condition(mc.Status.Conditions, flotillav1.ConditionReady), condition(mc.Status.Conditions, flotillav1.ConditionCredentialsValid)
			agent := condition(mc.Status.Conditions, flotillav1.ConditionAgentAvailable)
			return ready.Status == metav1.ConditionTrue && creds.Status == metav1.ConditionTrue && agent.Reason == "AgentNotFound" && mc.Status.KubernetesVersion != "",
				ready.Reason + "/" + creds.Reason + "/" + agent.Reason
		})
		// An agent heartbeat turns AgentAvailable True.
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: flotillav1.AgentLeaseName, Namespace: ns, Annotations: map[string]string{flotillav1.AnnotationAgentVersion: "v0.1.0"}},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent"), RenewTime: &metav1.MicroTime{Time: time.Now()}, LeaseDurationSeconds: ptr.To(int32(3600))},
		}
		require.NoError(t, f.spokes["east"].Client.Create(ctx, lease))
		eventually(t, 20*time.Second, "east AgentAvailable", func() (bool, string) {
			mc := &flotillav1.MemberCluster{}
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "east"}, mc))
			agent := condition(mc.Status.Conditions, flotillav1.ConditionAgentAvailable)
			return agent.Status == metav1.ConditionTrue && mc.Status.AgentVersion == "v0.1.0" && mc.Status.LastHeartbeatTime != nil, agent.Reason
		})
	})

	t.Run("spoke status is mirrored and aggregated", func(t *testing.T) {
		for _, cluster := range []string{"east", "west"} {
			for _, app := range []string{"web", "api"} {
				health := flotillav1.HealthStatus{Status: flotillav1.HealthHealthy, Message: "all 1 resources Healthy"}
				if cluster == "west" && app == "api" {
					health = flotillav1.HealthStatus{Status: flotillav1.HealthDegraded, Message: "Deployment api/api: 0 of 2 replicas available"}
				}
				agentReports(t, f.spokes[cluster].Client, delivery.SpokeName("default", cluster+"-"+app), health)
			}
		}
		// west has no agent heartbeat: what its copies say may be stale, so
		// the hub says Unknown, and the set is not Healthy for it.
		eventually(t, 30*time.Second, "west Unknown while its agent is unavailable", func() (bool, string) {
			got := &flotillav1.ApplicationSet{}
			require.NoError(t, hc.Get(ctx, key("guestbook"), got))
			app := &flotillav1.Application{}
			require.NoError(t, hc.Get(ctx, key("west-api"), app))
			h := condition(app.Status.Conditions, flotillav1.ConditionHealthy)
			s := got.Status.Summary
			return s.Healthy == 2 && s.Unknown == 4 && got.Status.Revisions[0].Healthy == 2 && app.Status.Health.Status == flotillav1.HealthUnknown &&
					h.Reason == flotillav1.ReasonAgentUnavailable && strings.Contains(h.Message, "AgentNotFound") &&
					condition(got.Status.Conditions, flotillav1.ConditionHealthy).Status == metav1.ConditionUnknown,
				toYAML(got.Status.Summary) + toYAML(app.Status.Conditions)
		})
		lease := &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: flotillav1.AgentLeaseName, Namespace: ns},
			Spec:       coordinationv1.LeaseSpec{HolderIdentity: ptr.To("agent"), RenewTime: &metav1.MicroTime{Time: time.Now()}, LeaseDurationSeconds: ptr.To(int32(3600))},
		}
		require.NoError(t, f.spokes["west"].Client.Create(ctx, lease))
		eventually(t, 30*time.Second, "aggregated set status", func() (bool, string) {
			got := &flotillav1.ApplicationSet{}
			require.NoError(t, hc.Get(ctx, key("guestbook"), got))
			s := got.Status.Summary
			return s.Clusters == 3 && s.Applications == 6 && s.Synced == 4 && s.Healthy == 3 && s.Degraded == 1 &&
					len(got.Status.Revisions) == 1 && got.Status.Revisions[0].Applications == 4 && got.Status.Revisions[0].Healthy == 3 &&
					condition(got.Status.Conditions, flotillav1.ConditionHealthy).Reason == "Degraded",
				toYAML(got.Status)
		})
		got := &flotillav1.ApplicationSet{}
		require.NoError(t, hc.Get(ctx, key("guestbook"), got))
		require.NotEmpty(t, got.Status.NotHealthy)
		assert.Equal(t, "west-api", got.Status.NotHealthy[0].Application)
		assert.Contains(t, got.Status.NotHealthy[0].Message, "0 of 2 replicas")
		assert.Equal(t, metav1.ConditionTrue, condition(got.Status.Conditions, flotillav1.ConditionParametersGenerated).Status)

		eventually(t, 20*time.Second, "member cluster counts", func() (bool, string) {
			mc := &flotillav1.MemberCluster{}
			require.NoError(t, hc.Get(ctx, types.NamespacedName{Name: "west"}, mc))
			a := mc.Status.Applications
			return a.Total == 2 && a.Healthy == 1 && a.Degraded == 1 && a.Synced == 2, toYAML(a)
		})
	})

	t.Run("a generator error changes nothing", func(t *testing.T) {
		before := hubApps(t, hc, "guestbook")
		gitDown := appSet("guestbook", "web", "api").Spec.Generators
		gitDown[0].Matrix.Generators[1] = flotillav1.NestedGenerator{Git: &flotillav1.GitGenerator{
			RepoURL: "http://" + blackhole(t) + "/deploy.git", Directories: []flotillav1.GitDirectory{{Path: "apps/*"}}}}
		cases := []struct {
			name, want string
			mutate     func(s *flotillav1.ApplicationSet)
		}{
			{name: "template with a missing key", want: `parameter "missing" is not set`,
				mutate: func(s *flotillav1.ApplicationSet) { s.Spec.Template.Metadata.Name = "{{ .name }}-{{ .missing }}" }},
			{name: "git server unreachable", want: "timed out after 2s",
				mutate: func(s *flotillav1.ApplicationSet) { s.Spec.Generators = gitDown }},
		}
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				original := &flotillav1.ApplicationSet{}
				require.NoError(t, hc.Get(ctx, key("guestbook"), original))
				updateSet(t, hc, "guestbook", tc.mutate)
				eventually(t, 20*time.Second, "ParametersGenerated=False", func() (bool, string) {
					s := &flotillav1.ApplicationSet{}
					require.NoError(t, hc.Get(ctx, key("guestbook"), s))
					c := condition(s.Status.Conditions, flotillav1.ConditionParametersGenerated)
					return c.Status == metav1.ConditionFalse && strings.Contains(c.Message, tc.want) && strings.Contains(c.Message, "left unchanged"), c.Message
				})
				time.Sleep(2 * time.Second) // give a wrong controller time to do damage
				after := hubApps(t, hc, "guestbook")
				require.Equal(t, keys(before), keys(after))
				for name, a := range after {
					assert.Equal(t, before[name].UID, a.UID, name)
					assert.Equal(t, before[name].Generation, a.Generation, name)
					assert.True(t, a.DeletionTimestamp.IsZero(), name)
				}
				updateSet(t, hc, "guestbook", func(s *flotillav1.ApplicationSet) { s.Spec = original.Spec })
			})
		}
	})

	t.Run("a removed element is deleted from its spoke", func(t *testing.T) {
		updateSet(t, hc, "guestbook", func(s *flotillav1.ApplicationSet) { s.Spec.Generators = appSet("guestbook", "web").Spec.Generators })
		for name, spoke := range f.spokes {
			eventually(t, 30*time.Second, "api gone from "+name, func() (bool, string) {
				apps := spokeApps(t, spoke.Client)
				_, hasAPI := apps[delivery.SpokeName("default", name+"-api")]
				_, hasWeb := apps[delivery.SpokeName("default", name+"-web")]
				return !hasAPI && hasWeb, strings.Join(keys(apps), ",")
			})
		}
	})

	t.Run("a hub restart rewrites nothing", func(t *testing.T) {
		eventually(t, 20*time.Second, "hub apps settled", func() (bool, string) {
			live, deleting := 0, []string{}
			for _, a := range hubApps(t, hc, "guestbook") {
				if a.DeletionTimestamp.IsZero() {
					live++
				} else {
					deleting = append(deleting, a.Name)
				}
			}
			// hung-api waits on its unreachable cluster: nothing lost.
			return live == 3 && len(deleting) == 1 && deleting[0] == "hung-api", fmt.Sprintf("live %d, deleting %v", live, deleting)
		})
		time.Sleep(time.Second)
		hubBefore := hubApps(t, hc, "guestbook")
		spokeBefore := map[string]map[string]flotillav1.Application{}
		for name, spoke := range f.spokes {
			spokeBefore[name] = spokeApps(t, spoke.Client)
		}
		stop()
		f.startHub(outer, hub.Options{GitTimeout: 2 * time.Second})
		time.Sleep(5 * time.Second)
		hubAfter := hubApps(t, hc, "guestbook")
		require.Equal(t, keys(hubBefore), keys(hubAfter))
		for n, a := range hubAfter {
			assert.Equal(t, hubBefore[n].UID, a.UID, "hub %s recreated", n)
			assert.Equal(t, hubBefore[n].Generation, a.Generation, "hub %s spec rewritten", n)
		}
		for name, spoke := range f.spokes {
			after := spokeApps(t, spoke.Client)
			require.Equal(t, keys(spokeBefore[name]), keys(after))
			for n, a := range after {
				assert.Equal(t, spokeBefore[name][n].UID, a.UID, "spoke %s/%s recreated", name, n)
				assert.Equal(t, spokeBefore[name][n].ResourceVersion, a.ResourceVersion, "spoke %s/%s rewritten", name, n)
			}
		}
	})

	t.Run("deleting the set removes spoke copies", func(t *testing.T) {
		// First a template update: server-side apply must keep delivery's
		// finalizer on the updated Applications (it used to send it only
		// on create, so the update dropped it and deletion orphaned the
		// spoke copies).
		wc, err := client.NewWithWatch(f.hub.Config, client.Options{Scheme: f.hub.Client.Scheme()})
		require.NoError(t, err)
		w, err := wc.Watch(ctx, &flotillav1.ApplicationList{}, client.InNamespace("default"))
		require.NoError(t, err)
		var dropped []string
		watched := make(chan struct{})
		go func() {
			defer close(watched)
			for ev := range w.ResultChan() {
				if a, ok := ev.Object.(*flotillav1.Application); ok && a.DeletionTimestamp.IsZero() && !slices.Contains(a.Finalizers, flotillav1.FinalizerDelivery) {
					dropped = append(dropped, fmt.Sprintf("%s %s at generation %d", ev.Type, a.Name, a.Generation))
				}
			}
		}()
		updateSet(t, hc, "guestbook", func(s *flotillav1.ApplicationSet) { s.Spec.Template.Spec.Source.TargetRevision = "v2" })
		for name, spoke := range f.spokes {
			eventually(t, 30*time.Second, "v2 on spoke "+name, func() (bool, string) {
				for _, a := range spokeApps(t, spoke.Client) {
					if a.Spec.Source.TargetRevision != "v2" {
						return false, a.Name + " at " + a.Spec.Source.TargetRevision
					}
				}
				return true, ""
			})
		}
		w.Stop()
		<-watched
		assert.Empty(t, dropped, "Applications without delivery's finalizer, even for a moment (a deletion then would orphan the spoke copy)")
		// envtest runs no garbage collector: delete the set, then what the
		// collector would delete with it.
		require.NoError(t, hc.Delete(ctx, &flotillav1.ApplicationSet{ObjectMeta: metav1.ObjectMeta{Name: "guestbook", Namespace: "default"}}))
		time.Sleep(time.Second) // the collector acts once it has seen the owner go
		require.NoError(t, hc.DeleteAllOf(ctx, &flotillav1.Application{}, client.InNamespace("default"), client.MatchingLabels{flotillav1.LabelApplicationSet: "guestbook"}))
		for name, spoke := range f.spokes {
			eventually(t, 30*time.Second, "spoke "+name+" empty", func() (bool, string) {
				apps := spokeApps(t, spoke.Client)
				var hubList flotillav1.ApplicationList
				require.NoError(t, hc.List(ctx, &hubList))
				return len(apps) == 0, strings.Join(keys(apps), ",") + "\nhub: " + summarizeApps(hubList.Items)
			})
		}
		// The hung cluster's Applications keep their finalizer: nothing lost.
		app := &flotillav1.Application{}
		require.NoError(t, hc.Get(ctx, key("hung-web"), app))
		assert.False(t, app.DeletionTimestamp.IsZero())
		assert.Contains(t, app.Finalizers, flotillav1.FinalizerDelivery)
	})
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func toYAML(v any) string {
	b, _ := yaml.Marshal(v)
	return string(b)
}

func summarizeApps(apps []flotillav1.Application) string {
	var b strings.Builder
	for _, a := range apps {
		d := condition(a.Status.Conditions, flotillav1.ConditionDelivered)
		fmt.Fprintf(&b, "\n  %s deleting=%v finalizers=%v delivered=%s/%s: %s", a.Name, !a.DeletionTimestamp.IsZero(), a.Finalizers, d.Status, d.Reason, d.Message)
	}
	return b.String()
}
