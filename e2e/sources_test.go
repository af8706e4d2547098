package e2e

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/e2e/fleettest"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/gittest"
	"github.com/flotilla-dev/flotilla/internal/helmtest"
	"github.com/flotilla-dev/flotilla/internal/localfleet"
)

const gitAppsSet = `apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: git-apps, namespace: default}
spec:
  generators:
  - matrix:
      generators:
      - clusters: {selector: {matchLabels: {env: dev}}}
      - list: {elements: [{app: guestbook}, {app: hello}]}
  template:
    metadata: {name: '{{ .name }}-{{ .app }}'}
    spec:
      source:
        repoURL: %q
        targetRevision: main
        path: 'apps/{{ .app }}'
        helm: {values: 'replicas: {{ index .metadata.labels "replicas" }}'}
      destination: {cluster: '{{ .name }}', namespace: '{{ .app }}'}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

const chartsSet = `apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: charts, namespace: default}
spec:
  generators:
  - matrix:
      generators:
      - clusters: {selector: {matchLabels: {env: dev}}}
      - list: {elements: [{app: web-repo, repo: %q, version: "^1.0"}, {app: web-oci, repo: %q, version: "1.0.0"}]}
  template:
    metadata: {name: '{{ .name }}-{{ .app }}'}
    spec:
      source:
        repoURL: '{{ .repo }}'
        chart: web
        targetRevision: '{{ .version }}'
        helm: {valuesObject: {replicas: '{{ index .metadata.labels "replicas" }}'}}
      destination: {cluster: '{{ .name }}', namespace: '{{ .app }}'}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`

func webChart(version string) helmtest.Chart {
	return helmtest.Chart{Name: "web", Version: version, Values: "replicas: 1\n", Templates: map[string]string{"deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}, labels: {chart: web-` + version + `}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: {{ .Release.Name }}}}
  template:
    metadata: {labels: {app: {{ .Release.Name }}}}
    spec: {containers: [{name: web, image: "registry.example/web:` + version + `"}]}
`}}
}

// flotillaIn runs the flotilla binary with standard input.
func flotillaIn(t *testing.T, f *localfleet.Fleet, stdin string, args ...string) (string, error) {
	bin, err := fleettest.BuildFlotilla()
	check(t, err)
	cmd := exec.Command(filepath.Join(bin, "flotilla"), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+f.Kubeconfig)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	return out.String(), err
}

// Scenario: private sources on 3 spokes. A private Git repository over
// HTTPS (basic auth, a private CA) holds a Kustomize app and a Helm chart;
// a private Helm repository and a private OCI registry hold another chart.
// Credentials are added with `flotilla repo add`; every app turns Healthy
// on every spoke with replicas from its cluster's label; `flotilla
// render` prints what the agent applied; rotating the Git password with
// `flotilla repo add` again reaches every spoke and the old one is gone.
func TestPrivateSourcesOnEverySpoke(t *testing.T) {
	spokes := []string{"spoke-1", "spoke-2", "spoke-3"}
	f := fleettest.Start(t, spokes, func(o *localfleet.Options) { o.SpokeLabels = map[string]string{"env": "dev"} })
	ctx := context.Background()
	for i, s := range spokes {
		mustOut(t)(f.Kubectl(ctx, "label", "membercluster", s, fmt.Sprintf("replicas=%d", i+1)))
	}

	gitSrv := gittest.NewTLS(t)
	repo := gitSrv.Repo(t, "platform")
	files := localfleet.SampleFiles([]string{"guestbook"}, "v1")
	maps.Copy(files, localfleet.SampleChartFiles())
	rev := repo.MustCommit(t, files, "a Kustomize app and a Helm chart")
	gitSrv.RequireBasicAuth("ci", "git-pass-1")
	charts := helmtest.NewRepo(t)
	charts.RequireBasicAuth("reader", "helm-pass-1")
	reg := helmtest.NewRegistry(t, "puller", "oci-pass-1")
	for _, v := range []string{"1.0.0", "1.1.0"} {
		charts.Add(t, webChart(v), helmtest.Package(t, webChart(v)))
	}
	reg.Push(t, "charts", webChart("1.0.0"), helmtest.Package(t, webChart("1.0.0")))
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	check(t, os.WriteFile(caFile, gitSrv.CAPEM, 0o600))

	for _, add := range [][]string{
		{"git-pass-1", repo.URL, "--prefix", gitSrv.URL, "--username", "ci", "--ca-file", caFile},
		{"helm-pass-1", charts.URL, "--type", "helm", "--username", "reader"},
		{"oci-pass-1", reg.URL, "--username", "puller"},
	} {
		out, err := flotillaIn(t, f, add[0]+"\n", append([]string{"repo", "add", add[1], "--password-stdin", "--allow-loopback"}, add[2:]...)...)
		if err != nil {
			t.Fatalf("repo add %s: %v\n%s", add[1], err, out)
		}
	}
	check(t, f.ApplyYAML(ctx, "git-apps", fmt.Sprintf(gitAppsSet, repo.URL)))
	check(t, f.ApplyYAML(ctx, "charts", fmt.Sprintf(chartsSet, charts.URL, reg.URL+"/charts")))
	took := eventually(t, 3*time.Minute, "12 Applications Healthy", func() (bool, string) {
		ok1, msg1 := allHealthyAt(t, f, "default", "git-apps", 6, rev)
		apps := appsOf(t, f, "default", "charts")
		healthy := 0
		for _, a := range apps {
			if a.Status.Health.Status == flotillav1.HealthHealthy {
				healthy++
			}
		}
		return ok1 && healthy == 6, fmt.Sprintf("%s; charts %d/6 Healthy", msg1, healthy)
	})
	t.Logf("a Kustomize app and 3 Helm charts from private sources Healthy on 3 spokes in %s", took)
	for i, s := range spokes {
		for _, d := range []struct{ ns, name string }{{"hello", s + "-hello"}, {"web-repo", s + "-web-repo"}, {"web-oci", s + "-web-oci"}} {
			dep := deployment(t, f.Spokes[s], d.ns, d.name)
			if dep == nil || dep.Spec.Replicas == nil || int(*dep.Spec.Replicas) != i+1 || dep.Status.AvailableReplicas != int32(i+1) {
				t.Fatalf("%s/%s on %s: want %d replicas (its cluster's label), got %+v", d.ns, d.name, s, i+1, dep)
			}
		}
		if dep := deployment(t, f.Spokes[s], "web-repo", s+"-web-repo"); dep.Labels["chart"] != "web-1.1.0" {
			t.Fatalf("^1.0 should resolve to 1.1.0 on %s: %v", s, dep.Labels)
		}
	}
	a := &flotillav1.Application{}
	check(t, f.Hub.Client.Get(ctx, types.NamespacedName{Namespace: "default", Name: "spoke-1-web-repo"}, a))
	if a.Status.Sync.Revision != "1.1.0" {
		t.Fatalf("the hub Application reports chart version %q, want 1.1.0", a.Status.Sync.Revision)
	}
	requireCopies(t, f, spokes, map[string]string{gitSrv.URL: "git-pass-1", charts.URL: "helm-pass-1", "oci://" + reg.Host: "oci-pass-1"})

	// flotilla render prints what the agent applied on spoke-2.
	clusters := filepath.Join(t.TempDir(), "clusters.yaml")
	check(t, os.WriteFile(clusters, []byte(mustOut(t)(f.Kubectl(ctx, "get", "memberclusters", "-o", "yaml"))), 0o600))
	for _, set := range []string{"git-apps", "charts"} {
		out := mustOut(t)(f.Flotilla(ctx, "render", "-f", filepath.Join(f.Dir, set+".yaml"), "--clusters", clusters, "--cluster", "spoke-2", "--repo-creds-from-hub",
			"--git-cache", filepath.Join(t.TempDir(), "git")))
		compareWithSpoke(t, f.Spokes["spoke-2"], out)
	}

	// Rotation: the Git server takes a new password; until the hub has it
	// the agents fail to fetch (and say nothing secret); then every spoke
	// gets the new one, the old one gone, and a new commit rolls out.
	gitSrv.RequireBasicAuth("ci", "git-pass-2")
	out, err := flotillaIn(t, f, "git-pass-2\n", "repo", "add", repo.URL, "--prefix", gitSrv.URL, "--username", "ci", "--ca-file", caFile, "--password-stdin", "--allow-loopback")
	if err != nil {
		t.Fatalf("repo add (rotation): %v\n%s", err, out)
	}
	requireCopies(t, f, spokes, map[string]string{gitSrv.URL: "git-pass-2", charts.URL: "helm-pass-1", "oci://" + reg.Host: "oci-pass-1"})
	rev2 := repo.MustCommit(t, map[string]string{"apps/hello/values.yaml": "replicas: 2\nmessage: Hello again\n"}, "a new message")
	check(t, f.ApplyYAML(ctx, "git-apps", strings.Replace(fmt.Sprintf(gitAppsSet, repo.URL), "metadata: {name: git-apps, namespace: default}",
		"metadata: {name: git-apps, namespace: default, annotations: {flotilla.dev/refresh: rotated}}", 1)))
	eventually(t, 2*time.Minute, "the Git apps Healthy at the new commit, with the new password", func() (bool, string) {
		return allHealthyAt(t, f, "default", "git-apps", 6, rev2)
	})

	// Nothing secret anywhere: logs, Events, conditions.
	var text strings.Builder
	logs, _ := filepath.Glob(filepath.Join(f.LogDir, "*"))
	for _, l := range logs {
		raw, _ := os.ReadFile(l)
		text.Write(raw)
	}
	for _, c := range append([]*localfleet.Cluster{f.Hub}, f.Spokes["spoke-1"], f.Spokes["spoke-2"], f.Spokes["spoke-3"]) {
		var evs corev1.EventList
		check(t, c.Client.List(ctx, &evs))
		for _, e := range evs.Items {
			fmt.Fprintln(&text, e.Message)
		}
		var apps flotillav1.ApplicationList
		check(t, c.Client.List(ctx, &apps))
		for _, a := range apps.Items {
			fmt.Fprintf(&text, "%+v\n", a.Status)
		}
	}
	for _, s := range []string{"git-pass-1", "git-pass-2", "helm-pass-1", "oci-pass-1"} {
		if strings.Contains(text.String(), s) {
			t.Fatalf("%q appears in a log, Event or status", s)
		}
	}
}

// requireCopies waits until every spoke holds exactly these credentials
// (URL prefix → password) in its agent namespace.
func requireCopies(t *testing.T, f *localfleet.Fleet, spokes []string, want map[string]string) {
	t.Helper()
	for _, s := range spokes {
		eventually(t, 30*time.Second, s+" holds the hub's credentials", func() (bool, string) {
			var list corev1.SecretList
			check(t, f.Spokes[s].Client.List(context.Background(), &list, client.InNamespace(flotillav1.SystemNamespace),
				client.MatchingLabels{flotillav1.LabelSecretType: git.SecretTypeRepository}))
			got := map[string]string{}
			for _, sec := range list.Items {
				got[string(sec.Data[git.SecretKeyURL])] = string(sec.Data[git.SecretKeyPassword])
			}
			return maps.Equal(got, want), fmt.Sprintf("%d copies", len(got))
		})
	}
}

// compareWithSpoke checks that every object `flotilla render` printed is
// live on the spoke with the same content (every rendered field equal).
func compareWithSpoke(t *testing.T, c *localfleet.Cluster, rendered string) {
	t.Helper()
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(rendered), 4096)
	n := 0
	for {
		obj := map[string]any{}
		if err := dec.Decode(&obj); err != nil {
			break
		}
		if len(obj) == 0 {
			continue
		}
		want := &unstructured.Unstructured{Object: obj}
		live := &unstructured.Unstructured{}
		live.SetGroupVersionKind(want.GroupVersionKind())
		key := types.NamespacedName{Namespace: namespaceOf(want), Name: want.GetName()}
		check(t, c.Client.Get(context.Background(), key, live))
		for _, field := range []string{"spec", "data"} {
			if w, ok := want.Object[field]; ok && !subset(w, live.Object[field]) {
				t.Fatalf("%s %s: rendered %s %v, live %v", want.GetKind(), key, field, w, live.Object[field])
			}
		}
		if !subset(any(want.GetLabels()), any(live.GetLabels())) {
			t.Fatalf("%s %s: rendered labels %v, live %v", want.GetKind(), key, want.GetLabels(), live.GetLabels())
		}
		n++
	}
	if n == 0 {
		t.Fatalf("flotilla render printed no objects:\n%s", rendered)
	}
	t.Logf("flotilla render: %d objects, each as the agent applied it", n)
}

// namespaceOf is where the agent put a rendered object without one: the
// Application's destination namespace, named after the app here.
func namespaceOf(o *unstructured.Unstructured) string {
	if ns := o.GetNamespace(); ns != "" {
		return ns
	}
	for _, app := range []string{"guestbook", "hello", "web-repo", "web-oci"} {
		if strings.HasSuffix(o.GetName(), app) || o.GetName() == app {
			return app
		}
	}
	return ""
}

// subset reports whether every field of want is in got with the same value.
func subset(want, got any) bool {
	switch w := want.(type) {
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range w {
			if !subset(v, g[k]) {
				return false
			}
		}
		return true
	case map[string]string:
		g, _ := got.(map[string]string)
		for k, v := range w {
			if g[k] != v {
				return false
			}
		}
		return true
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !subset(w[i], g[i]) {
				return false
			}
		}
		return true
	case float64:
		switch g := got.(type) {
		case int64:
			return float64(g) == w
		case float64:
			return g == w
		}
		return false
	}
	return reflect.DeepEqual(want, got)
}
