package charts

import (
	"bufio"
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/releaseutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	sigyaml "sigs.k8s.io/yaml"
)

// The two charts, whole: `flotilla install` and `flotilla cluster register`
// render these with Helm's engine, exactly as `helm install` would.
//
//go:embed all:flotilla all:flotilla-agent
var chartFiles embed.FS

// Chart names.
const (
	Hub   = "flotilla"
	Agent = "flotilla-agent"
)

// Load returns the embedded chart name (Hub or Agent).
func Load(name string) (*chart.Chart, error) {
	if name != Hub && name != Agent {
		return nil, fmt.Errorf("unknown chart %q", name)
	}
	var files []*loader.BufferedFile
	err := fs.WalkDir(chartFiles, name, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := chartFiles.ReadFile(p)
		if err != nil {
			return err
		}
		files = append(files, &loader.BufferedFile{Name: strings.TrimPrefix(p, name+"/"), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read embedded chart %s: %w", name, err)
	}
	c, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("load embedded chart %s: %w", name, err)
	}
	return c, nil
}

// Rendered is a chart rendered for one namespace.
type Rendered struct {
	// Objects in install order: CRDs first, then Namespaces, ServiceAccounts,
	// RBAC, workloads (Helm's install order).
	Objects []*unstructured.Unstructured
	// Notes is the rendered NOTES.txt.
	Notes string
}

// Render renders chart name into namespace with values merged over the
// chart's defaults, including its CRDs, as Helm installs them.
func Render(name, namespace string, values map[string]any) (*Rendered, error) {
	c, err := Load(name)
	if err != nil {
		return nil, err
	}
	if err := chartutil.ProcessDependencies(c, values); err != nil {
		return nil, err
	}
	opts := chartutil.ReleaseOptions{Name: name, Namespace: namespace, Revision: 1, IsInstall: true}
	vals, err := chartutil.ToRenderValues(c, values, opts, chartutil.DefaultCapabilities)
	if err != nil {
		return nil, fmt.Errorf("values for chart %s: %w", name, err)
	}
	files, err := engine.Render(c, vals)
	if err != nil {
		return nil, fmt.Errorf("render chart %s: %w", name, err)
	}
	out := &Rendered{}
	var objs []*unstructured.Unstructured
	for _, crd := range c.CRDObjects() {
		docs, err := decode(crd.Filename, crd.File.Data)
		if err != nil {
			return nil, err
		}
		objs = append(objs, docs...)
	}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		if strings.HasSuffix(n, "NOTES.txt") {
			out.Notes = strings.TrimSpace(files[n])
			continue
		}
		if path.Ext(n) != ".yaml" {
			continue
		}
		docs, err := decode(n, []byte(files[n]))
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			if d.GetNamespace() == "" && namespaced(d.GetKind()) {
				d.SetNamespace(namespace)
			}
		}
		objs = append(objs, docs...)
	}
	sort.SliceStable(objs, func(i, j int) bool { return kindRank(objs[i].GetKind()) < kindRank(objs[j].GetKind()) })
	out.Objects = objs
	return out, nil
}

func decode(name string, data []byte) ([]*unstructured.Unstructured, error) {
	var objs []*unstructured.Unstructured
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	for {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", name, err)
		}
		js, err := sigyaml.YAMLToJSON(doc)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		if len(bytes.TrimSpace(js)) == 0 || string(bytes.TrimSpace(js)) == "null" {
			continue
		}
		u := &unstructured.Unstructured{}
		if err := u.UnmarshalJSON(js); err != nil {
			return nil, fmt.Errorf("decode %s: %w", name, err)
		}
		if u.GetName() == "" {
			return nil, fmt.Errorf("decode %s: an object without a name", name)
		}
		objs = append(objs, u)
	}
}

var clusterScoped = []string{"CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterRoleBinding", "MemberCluster"}

func namespaced(kind string) bool { return !slices.Contains(clusterScoped, kind) }

func kindRank(kind string) int {
	if i := slices.Index(releaseutil.InstallOrder, kind); i >= 0 {
		return i
	}
	return len(releaseutil.InstallOrder)
}
