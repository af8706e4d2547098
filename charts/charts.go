// Package charts embeds the Helm charts' generated CRDs so the CLI and the
// tests install exactly what the charts ship: one source of manifests.
package charts

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"sort"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
)

//go:embed flotilla/crds/*.yaml flotilla-agent/crds/*.yaml
var crdFiles embed.FS

const (
	hubCRDDir   = "flotilla/crds"
	agentCRDDir = "flotilla-agent/crds"
)

// HubCRDs returns every Flotilla CRD (MemberCluster, ApplicationSet,
// Application), as installed on the hub.
func HubCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return readCRDs(hubCRDDir)
}

// AgentCRDs returns the CRDs a spoke needs (Application).
func AgentCRDs() ([]*apiextensionsv1.CustomResourceDefinition, error) {
	return readCRDs(agentCRDDir)
}

func readCRDs(dir string) ([]*apiextensionsv1.CustomResourceDefinition, error) {
	entries, err := fs.ReadDir(crdFiles, dir)
	if err != nil {
		return nil, fmt.Errorf("read embedded CRDs in %s: %w", dir, err)
	}
	names := make([]string, 0, len(entries))
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	var crds []*apiextensionsv1.CustomResourceDefinition
	for _, name := range names {
		raw, err := crdFiles.ReadFile(path.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read embedded CRD %s: %w", name, err)
		}
		dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
		for {
			crd := &apiextensionsv1.CustomResourceDefinition{}
			if err := dec.Decode(crd); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("decode embedded CRD %s: %w", name, err)
			}
			if crd.Name == "" {
				continue
			}
			crds = append(crds, crd)
		}
	}
	if len(crds) == 0 {
		return nil, fmt.Errorf("no CRDs embedded in %s: run 'make generate'", dir)
	}
	return crds, nil
}
