package agent

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	chartloader "helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/git"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/yamlbound"
)

// Capabilities are what a chart's .Capabilities sees: the spoke's real
// Kubernetes version and API versions (group/version and group/version/Kind).
type Capabilities struct {
	KubeVersion string   `json:"kubeVersion,omitempty"`
	APIVersions []string `json:"apiVersions,omitempty"`
}

// HelmRelease names the release a chart is rendered as.
type HelmRelease struct {
	// Name defaults to the Application's name; Namespace is the destination.
	Name, Namespace string
}

// isChartDir reports whether the directory holds a Helm chart.
func isChartDir(tree Tree, dir string) bool {
	_, kind, err := tree.Resolve(path.Join(dir, "Chart.yaml"))
	return err == nil && kind == git.KindFile
}

// chartFromTree loads the chart at dir of the repository: every file below
// it, bounded in size and checked for YAML bombs, and nothing outside it.
func chartFromTree(tree Tree, dir string, opts RenderOptions) (*chart.Chart, error) {
	var files []*chartloader.BufferedFile
	var total int64
	for _, f := range tree.Files() {
		if dir != "" && !strings.HasPrefix(f, dir+"/") {
			continue
		}
		real, kind, err := tree.Resolve(f)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRender, f, err)
		}
		if kind != git.KindFile {
			continue
		}
		data, err := tree.ReadFile(real)
		if err != nil {
			return nil, fmt.Errorf("%w: %s: %w", ErrRender, f, err)
		}
		if total += int64(len(data)); total > opts.MaxTotalSize {
			return nil, fmt.Errorf("%w: the chart at %s is over %d MiB", ErrRender, dir, opts.MaxTotalSize>>20)
		}
		files = append(files, &chartloader.BufferedFile{Name: strings.TrimPrefix(f, dir+"/"), Data: data})
	}
	return loadChart(files, dir)
}

// chartFromArchive loads a chart archive (.tgz), checking its YAML first.
func chartFromArchive(archive []byte, name string) (*chart.Chart, error) {
	files, err := chartloader.LoadArchiveFiles(bytes.NewReader(archive))
	if err != nil {
		return nil, fmt.Errorf("%w: chart %s: %s", ErrRender, name, kube.FirstLine(err))
	}
	return loadChart(files, name)
}

func loadChart(files []*chartloader.BufferedFile, where string) (*chart.Chart, error) {
	for _, f := range files {
		if ext := path.Ext(f.Name); ext == ".yaml" || ext == ".yml" || ext == ".json" {
			if strings.Contains(f.Name, "templates/") {
				continue // templates are not YAML until rendered; their output is checked
			}
			if err := yamlbound.Check(f.Data, yamlbound.Default); err != nil {
				return nil, fmt.Errorf("%w: chart %s: %s: %w", ErrRender, where, f.Name, err)
			}
		}
	}
	ch, err := chartloader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("%w: chart %s: %s", ErrRender, where, kube.FirstLine(err))
	}
	if deps := ch.Metadata.Dependencies; len(deps) > 0 {
		if err := action.CheckDependencies(ch, deps); err != nil {
			return nil, fmt.Errorf("%w: chart %s: %s: vendor the dependencies into its charts/ directory (helm dependency build) and commit them", ErrRender, where, kube.FirstLine(err))
		}
	}
	return ch, nil
}

// helmValues merges the chart's value files, then values, then
// valuesObject (later wins, maps merged deeply), as helm -f … --set does.
// readFile reads a value file named relative to the chart.
func helmValues(h *flotillav1.HelmSource, readFile func(string) ([]byte, error)) (map[string]any, error) {
	out := map[string]any{}
	if h == nil {
		return out, nil
	}
	merge := func(what string, raw []byte) error {
		if err := yamlbound.Check(raw, yamlbound.Default); err != nil {
			return fmt.Errorf("%w: %s: %w", ErrRender, what, err)
		}
		m := map[string]any{}
		if err := yaml.Unmarshal(raw, &m); err != nil {
			return fmt.Errorf("%w: %s is not a YAML map of values: %s", ErrRender, what, kube.FirstLine(err))
		}
		out = mergeMaps(out, m)
		return nil
	}
	for _, f := range h.ValueFiles {
		raw, err := readFile(f)
		if err != nil {
			return nil, fmt.Errorf("%w: helm.valueFiles %q: %w", ErrRender, f, err)
		}
		if err := merge("helm.valueFiles "+f, raw); err != nil {
			return nil, err
		}
	}
	if h.Values != "" {
		if err := merge("helm.values", []byte(h.Values)); err != nil {
			return nil, err
		}
	}
	if h.ValuesObject != nil && len(h.ValuesObject.Raw) > 0 {
		if err := merge("helm.valuesObject", h.ValuesObject.Raw); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := make(map[string]any, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// treeValueFile reads a value file named relative to the chart directory:
// it may name any file of the repository, never one outside it (../ past
// the root, an absolute path, or a symlink that leads out).
func treeValueFile(tree Tree, chartDir string) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		if strings.HasPrefix(name, "/") || strings.Contains(name, "\\") || strings.Contains(name, "://") {
			return nil, fmt.Errorf("%w: use a path relative to the chart", git.ErrEscapesRepo)
		}
		rel := path.Join(chartDir, name)
		if rel == ".." || strings.HasPrefix(rel, "../") {
			return nil, fmt.Errorf("%w: it is outside the repository", git.ErrEscapesRepo)
		}
		real, kind, err := tree.Resolve(rel)
		if err != nil {
			return nil, err
		}
		if kind != git.KindFile {
			return nil, fmt.Errorf("not a file in the repository")
		}
		return tree.ReadFile(real)
	}
}

// archiveValueFile reads a value file of a chart archive.
func archiveValueFile(ch *chart.Chart) func(string) ([]byte, error) {
	return func(name string) ([]byte, error) {
		clean := path.Clean(name)
		if strings.HasPrefix(name, "/") || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("%w: name a file of the chart", git.ErrEscapesRepo)
		}
		for _, f := range ch.Raw {
			if f.Name == clean {
				return f.Data, nil
			}
		}
		return nil, fmt.Errorf("the chart has no file %s", clean)
	}
}

// renderChart renders ch as `helm template` would for this spoke: the
// manifests (CRDs from crds/ first unless skipped) and the hooks that a
// sync runs (pre-install/pre-upgrade, post-install/post-upgrade), each
// with its helm.sh/hook annotations, which the apply phase orders by.
// Test hooks and delete/rollback hooks are left out: a GitOps sync never
// runs `helm test`, uninstalls or rolls back a release.
func renderChart(ch *chart.Chart, vals map[string]any, h *flotillav1.HelmSource, rel HelmRelease, caps Capabilities, opts RenderOptions) ([]*unstructured.Unstructured, error) {
	cfg := &action.Configuration{Log: func(string, ...any) {}}
	inst := action.NewInstall(cfg)
	inst.DryRun, inst.ClientOnly, inst.Replace, inst.DisableHooks = true, true, true, false
	inst.ReleaseName, inst.Namespace = rel.Name, rel.Namespace
	if h != nil && h.ReleaseName != "" {
		inst.ReleaseName = h.ReleaseName
	}
	inst.IncludeCRDs = h == nil || !h.SkipCRDs
	inst.SkipCRDs = !inst.IncludeCRDs
	if caps.KubeVersion != "" {
		kv, err := chartutil.ParseKubeVersion(caps.KubeVersion)
		if err == nil {
			inst.KubeVersion = kv
		}
	}
	inst.APIVersions = caps.APIVersions
	r, err := inst.Run(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("%w: helm template %s: %s", ErrRender, ch.Name(), kube.FirstLine(err))
	}
	objs, err := manifestObjects(r.Manifest, opts)
	if err != nil {
		return nil, err
	}
	for _, hook := range r.Hooks {
		if !syncHook(hook) {
			continue
		}
		hobjs, err := manifestObjects(hook.Manifest, opts)
		if err != nil {
			return nil, fmt.Errorf("%w: hook %s: %w", ErrRender, hook.Path, err)
		}
		objs = append(objs, hobjs...)
	}
	if len(objs) > opts.MaxObjects {
		return nil, fmt.Errorf("%w: chart %s renders %d objects, the limit is %d", ErrRender, ch.Name(), len(objs), opts.MaxObjects)
	}
	return objs, nil
}

func syncHook(h *release.Hook) bool {
	for _, e := range h.Events {
		switch e {
		case release.HookPreInstall, release.HookPreUpgrade, release.HookPostInstall, release.HookPostUpgrade:
			return true
		}
	}
	return false
}

// manifestObjects parses rendered YAML documents, bounded like any file.
func manifestObjects(manifest string, opts RenderOptions) ([]*unstructured.Unstructured, error) {
	if err := yamlbound.Check([]byte(manifest), yamlbound.Default); err != nil {
		return nil, fmt.Errorf("%w: rendered manifests: %w", ErrRender, err)
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		m := map[string]any{}
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("%w: a rendered manifest does not parse: %s", ErrRender, kube.FirstLine(err))
		}
		if len(m) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: m}
		raw, err := u.MarshalJSON()
		if err == nil {
			u = &unstructured.Unstructured{}
			err = u.UnmarshalJSON(raw) // numbers become int64, as the apimachinery expects
		}
		if err != nil {
			return nil, fmt.Errorf("%w: a rendered manifest: %s", ErrRender, kube.FirstLine(err))
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" || u.GetName() == "" {
			return nil, fmt.Errorf("%w: a rendered manifest lacks apiVersion, kind or metadata.name", ErrRender)
		}
		out = append(out, u)
		if len(out) > opts.MaxObjects {
			return nil, fmt.Errorf("%w: more than %d objects rendered", ErrRender, opts.MaxObjects)
		}
	}
	return out, nil
}
