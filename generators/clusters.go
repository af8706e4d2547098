package generators

import (
	"context"
	"errors"
	"fmt"
	"sort"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/templates"
)

// ClusterSource lists the fleet's MemberClusters: a live hub's cache, or a
// file for the offline `flotilla generate`.
type ClusterSource interface {
	ListMemberClusters(ctx context.Context) ([]flotillav1.MemberCluster, error)
}

// StaticClusters is a fixed ClusterSource.
type StaticClusters []flotillav1.MemberCluster

// ListMemberClusters implements ClusterSource.
func (s StaticClusters) ListMemberClusters(context.Context) ([]flotillav1.MemberCluster, error) {
	return s, nil
}

// Clusters yields one parameter set per MemberCluster its selector matches:
// name, server, metadata.labels.<k>, metadata.annotations.<k>, values.<k>.
type Clusters struct {
	Source ClusterSource
}

var _ Generator = (*Clusters)(nil)

// Generate implements Generator.
func (c *Clusters) Generate(ctx context.Context, spec *Spec, parent Params) ([]Params, error) {
	if spec.Clusters == nil {
		return nil, errors.New("clusters generator without a clusters field")
	}
	if c.Source == nil {
		return nil, errors.New("no cluster inventory is available (offline: pass --clusters FILE)")
	}
	sel, err := metav1.LabelSelectorAsSelector(&spec.Clusters.Selector)
	if err != nil {
		return nil, fmt.Errorf("selector: %w", err)
	}
	clusters, err := c.Source.ListMemberClusters(ctx)
	if err != nil {
		return nil, fmt.Errorf("list MemberClusters: %w", err)
	}
	sort.Slice(clusters, func(i, j int) bool { return clusters[i].Name < clusters[j].Name })

	// Values may use the cluster's parameters: compile them once.
	values := map[string]*templates.String{}
	for _, k := range sortedKeys(spec.Clusters.Values) {
		if values[k], err = templates.CompileString("values."+k, spec.Clusters.Values[k]); err != nil {
			return nil, err
		}
	}
	out := make([]Params, 0, len(clusters))
	for i := range clusters {
		mc := &clusters[i]
		if !mc.DeletionTimestamp.IsZero() || !sel.Matches(labels.Set(mc.Labels)) {
			continue
		}
		p := ClusterParams(mc)
		scope := p
		if parent != nil {
			scope = mergeParams(parent, p)
		}
		vals := make(map[string]any, len(values))
		for k, t := range values {
			v, err := t.Execute(scope)
			if err != nil {
				return nil, fmt.Errorf("cluster %s: values.%s: %w", mc.Name, k, err)
			}
			vals[k] = v
		}
		p["values"] = vals
		out = append(out, p)
	}
	return out, nil
}

// ClusterParams are the parameters a MemberCluster offers a template.
func ClusterParams(mc *flotillav1.MemberCluster) Params {
	return Params{
		"name":           mc.Name,
		"nameNormalized": templates.Normalize(mc.Name),
		"server":         mc.Status.Server,
		"metadata": map[string]any{
			"labels":      stringMap(mc.Labels),
			"annotations": stringMap(mc.Annotations),
		},
	}
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
