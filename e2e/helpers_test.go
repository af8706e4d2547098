package e2e

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/apiutil"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

// eventually polls cond every 500ms until it holds or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	last := ""
	for time.Since(start) < timeout {
		ok, msg := cond()
		if ok {
			return time.Since(start)
		}
		last = msg
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("%s: not after %s; last: %s", what, timeout, last)
	return 0
}

// appsOf lists a set's hub Applications by name.
func appsOf(t *testing.T, f *localfleet.Fleet, ns, set string) map[string]flotillav1.Application {
	t.Helper()
	list := &flotillav1.ApplicationList{}
	if err := f.Hub.Client.List(context.Background(), list, client.InNamespace(ns), client.MatchingLabels{flotillav1.LabelApplicationSet: set}); err != nil {
		t.Fatalf("list Applications: %v", err)
	}
	out := map[string]flotillav1.Application{}
	for _, a := range list.Items {
		out[a.Name] = a
	}
	return out
}

// allHealthyAt reports whether the set has want Applications, all Synced
// and Healthy at rev ("" = any revision).
func allHealthyAt(t *testing.T, f *localfleet.Fleet, ns, set string, want int, rev string) (bool, string) {
	apps := appsOf(t, f, ns, set)
	var bad []string
	for name, a := range apps {
		if a.Status.Health.Status != flotillav1.HealthHealthy || a.Status.Sync.Status != flotillav1.SyncStatusSynced || (rev != "" && a.Status.Sync.Revision != rev) {
			bad = append(bad, fmt.Sprintf("%s=%s/%s@%.7s", name, a.Status.Sync.Status, a.Status.Health.Status, a.Status.Sync.Revision))
		}
	}
	sort.Strings(bad)
	return len(apps) == want && len(bad) == 0, fmt.Sprintf("%d/%d apps; not ready: %s", len(apps), want, strings.Join(bad, " "))
}

func conditionOf(conds []metav1.Condition, typ string) metav1.Condition {
	if c := apimeta.FindStatusCondition(conds, typ); c != nil {
		return *c
	}
	return metav1.Condition{Type: typ, Status: metav1.ConditionUnknown}
}

// deployment reads a Deployment on a spoke; nil when it does not exist.
func deployment(t *testing.T, c *localfleet.Cluster, ns, name string) *appsv1.Deployment {
	t.Helper()
	d := &appsv1.Deployment{}
	err := c.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, d)
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		t.Fatalf("get deployment %s/%s on %s: %v", ns, name, c.Name, err)
	}
	return d
}

// mustOut fails the test when a command fails.
func mustOut(t *testing.T) func(string, error) string {
	return func(out string, err error) string {
		t.Helper()
		check(t, err)
		return out
	}
}

func check(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// listSet is a list generator over clusters × apps from the sample repo.
func listSet(name, repoURL string, clusters, apps []string, extra string) string {
	var cl, ap []string
	for _, c := range clusters {
		cl = append(cl, "{cluster: "+c+"}")
	}
	for _, a := range apps {
		ap = append(ap, "{app: "+a+"}")
	}
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: %s, namespace: default}
spec:
  generators:
  - matrix:
      generators:
      - list: {elements: [%s]}
      - list: {elements: [%s]}
  template:
    metadata: {name: '{{ .cluster }}-{{ .app }}'}
    spec:
      source: {repoURL: %s, targetRevision: main, path: 'apps/{{ .app }}'}
      destination: {cluster: '{{ .cluster }}', namespace: '{{ .app }}'}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
%s`, name, strings.Join(cl, ", "), strings.Join(ap, ", "), repoURL, extra)
}

// setStatus reads an ApplicationSet's status.
func setStatus(t *testing.T, f *localfleet.Fleet, ns, name string) flotillav1.ApplicationSetStatus {
	t.Helper()
	s := &flotillav1.ApplicationSet{}
	check(t, f.Hub.Client.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, s))
	return s.Status
}

func regexpMatch(re, s string) bool { return regexp.MustCompile(re).MatchString(s) }

// spokeApps lists the Applications delivered to a spoke.
func spokeApps(t *testing.T, c *localfleet.Cluster) map[string]flotillav1.Application {
	t.Helper()
	list := &flotillav1.ApplicationList{}
	check(t, c.Client.List(context.Background(), list, client.InNamespace(flotillav1.SystemNamespace)))
	out := map[string]flotillav1.Application{}
	for _, a := range list.Items {
		out[a.Name] = a
	}
	return out
}

// requireCurrent runs cli-utils' kstatus on a live hub object: Current, as
// Flux, Argo CD health and kubectl-style tools would read it.
func requireCurrent(t *testing.T, f *localfleet.Fleet, obj client.Object, key types.NamespacedName) {
	t.Helper()
	check(t, f.Hub.Client.Get(context.Background(), key, obj))
	raw, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	check(t, err)
	u := &unstructured.Unstructured{Object: raw}
	gvk, err := apiutil.GVKForObject(obj, f.Hub.Client.Scheme())
	check(t, err)
	u.SetGroupVersionKind(gvk)
	res, err := status.Compute(u)
	check(t, err)
	if res.Status != status.CurrentStatus {
		t.Fatalf("kstatus of %T %s: %s (%s), want Current", obj, key, res.Status, res.Message)
	}
}
