package localfleet

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"

	"github.com/flotilla-dev/flotilla/internal/gitserver"
)

// SampleApps are the apps of the sample repository.
var SampleApps = []string{"guestbook", "podinfo", "redis"}

// SampleFiles is the sample repository's content: apps/<app> is a
// kustomization (Deployment + Service) whose image tag is tag.
func SampleFiles(apps []string, tag string) map[string]string {
	files := map[string]string{"README.md": "# Flotilla sandbox fleet\n\nOne folder per app under apps/; every app lands on every cluster labelled env=dev.\n"}
	for _, app := range apps {
		files["apps/"+app+"/kustomization.yaml"] = SampleKustomization(app, tag)
		files["apps/"+app+"/deployment.yaml"] = fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, labels: {app: %[1]s}}
spec:
  replicas: 2
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - name: %[1]s
        image: registry.example/%[1]s
        ports: [{containerPort: 8080}]
`, app)
		files["apps/"+app+"/service.yaml"] = fmt.Sprintf(`apiVersion: v1
kind: Service
metadata: {name: %[1]s}
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: 8080}]
`, app)
	}
	return files
}

// SampleKustomization is an app's kustomization pinning its image tag.
func SampleKustomization(app, tag string) string {
	return fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: [deployment.yaml, service.yaml]\nimages:\n- {name: registry.example/%s, newTag: %q}\n", app, tag)
}

// SampleAppSet is an ApplicationSet deploying every folder under apps/ of
// repoURL to every MemberCluster labelled env=<env>, into a namespace named
// after the app.
func SampleAppSet(name, namespace, repoURL, env string) string {
	return fmt.Sprintf(`apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: %s, namespace: %s}
spec:
  generators:
  - matrix:
      generators:
      - clusters: {selector: {matchLabels: {env: %s}}}
      - git: {repoURL: %q, revision: main, directories: [{path: 'apps/*'}]}
  template:
    metadata: {name: '{{ .name }}-{{ .path.basename }}'}
    spec:
      source: {repoURL: %q, targetRevision: main, path: '{{ .path.path }}'}
      destination: {cluster: '{{ .name }}', namespace: '{{ .path.basename }}'}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
`, name, namespace, env, repoURL, repoURL)
}

// SampleChartApp is the sample repository's Helm chart app (apps/hello):
// the agent renders a directory holding a Chart.yaml with Helm.
const SampleChartApp = "hello"

// SampleChartFiles is apps/hello: a Helm chart (Deployment + Service)
// whose replicas and message are values.
func SampleChartFiles() map[string]string {
	return map[string]string{
		"apps/hello/Chart.yaml":  "apiVersion: v2\nname: hello\ndescription: A sample Helm chart, rendered by the agent with the Helm SDK\nversion: 0.1.0\n",
		"apps/hello/values.yaml": "replicas: 2\nmessage: Hello from Helm\n",
		"apps/hello/templates/deployment.yaml": `apiVersion: apps/v1
kind: Deployment
metadata: {name: {{ .Release.Name }}, labels: {app: hello}}
spec:
  replicas: {{ .Values.replicas }}
  selector: {matchLabels: {app: hello}}
  template:
    metadata: {labels: {app: hello}}
    spec:
      containers:
      - name: hello
        image: registry.example/hello:v1
        env: [{name: MESSAGE, value: {{ .Values.message | quote }}}]
        ports: [{containerPort: 8080}]
`,
		"apps/hello/templates/service.yaml": `apiVersion: v1
kind: Service
metadata: {name: {{ .Release.Name }}}
spec:
  selector: {app: hello}
  ports: [{port: 80, targetPort: 8080}]
`,
	}
}

// SandboxRepo is SampleRepo with the Helm chart app too: what `flotilla
// sandbox` shows a new user.
func (f *Fleet) SandboxRepo() (*gitserver.Repo, string, error) {
	repo, err := f.Git.CreateRepo("fleet")
	if err != nil {
		return nil, "", err
	}
	files := SampleFiles(SampleApps, "v1")
	maps.Copy(files, SampleChartFiles())
	rev, err := repo.Commit(files, "Sample apps at v1, and a Helm chart")
	return repo, rev, err
}

// SampleRepo creates the sample repository "fleet" and returns it with its
// first commit.
func (f *Fleet) SampleRepo() (*gitserver.Repo, string, error) {
	repo, err := f.Git.CreateRepo("fleet")
	if err != nil {
		return nil, "", err
	}
	rev, err := repo.Commit(SampleFiles(SampleApps, "v1"), "Sample apps at v1")
	return repo, rev, err
}

// ApplyYAML writes doc to a file and `kubectl apply`s it on the hub.
func (f *Fleet) ApplyYAML(ctx context.Context, name, doc string) error {
	path := filepath.Join(f.Dir, name+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		return err
	}
	_, err := f.Kubectl(ctx, "--context", HubContext, "apply", "--server-side", "-f", path)
	return err
}
