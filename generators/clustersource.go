package generators

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

// HubClusters lists MemberClusters from a live hub (typically the
// manager's cached client).
type HubClusters struct{ Reader client.Reader }

var _ ClusterSource = HubClusters{}

// ListMemberClusters implements ClusterSource.
func (h HubClusters) ListMemberClusters(ctx context.Context) ([]flotillav1.MemberCluster, error) {
	var list flotillav1.MemberClusterList
	if err := h.Reader.List(ctx, &list); err != nil {
		return nil, err
	}
	return list.Items, nil
}

// ReadClusters parses MemberClusters from YAML or JSON: a stream of
// documents, each a MemberCluster or a MemberClusterList (as written by
// `kubectl get memberclusters -o yaml`). It backs the offline
// `flotilla generate --clusters FILE`.
func ReadClusters(r io.Reader) (StaticClusters, error) {
	raw, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, err
	}
	dec := yaml.NewYAMLOrJSONDecoder(bytes.NewReader(raw), 4096)
	var out StaticClusters
	for doc := 1; ; doc++ {
		var probe struct {
			Kind  string                     `json:"kind"`
			Items []flotillav1.MemberCluster `json:"items"`
			flotillav1.MemberCluster
		}
		if err := dec.Decode(&probe); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("clusters document %d: %w", doc, err)
		}
		switch probe.Kind {
		case "":
			continue // empty document
		case "MemberCluster":
			if probe.Name == "" {
				return nil, fmt.Errorf("clusters document %d: a MemberCluster needs metadata.name", doc)
			}
			out = append(out, probe.MemberCluster)
		case "MemberClusterList", "List":
			for i, it := range probe.Items {
				if it.Name == "" {
					return nil, fmt.Errorf("clusters document %d item %d: a MemberCluster needs metadata.name", doc, i)
				}
			}
			out = append(out, probe.Items...)
		default:
			return nil, fmt.Errorf("clusters document %d: kind %q is not a MemberCluster or a list of them", doc, probe.Kind)
		}
	}
	return out, nil
}
