package generators_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/generators"
)

// gens decodes a YAML list of generators as a user writes them.
func gens(t testing.TB, doc string) []flotillav1.ApplicationSetGenerator {
	t.Helper()
	var out []flotillav1.ApplicationSetGenerator
	require.NoError(t, yaml.Unmarshal([]byte(doc), &out), "test YAML:\n%s", doc)
	return out
}

func cluster(name string, labels map[string]string) flotillav1.MemberCluster {
	mc := flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: map[string]string{"owner": "team-" + name}}}
	mc.Status.Server = "https://" + name + ".example:6443"
	return mc
}

var fleet = generators.StaticClusters{
	cluster("prod-eu-1", map[string]string{"env": "prod", "region": "eu"}),
	cluster("prod-us-1", map[string]string{"env": "prod", "region": "us"}),
	cluster("staging-1", map[string]string{"env": "staging", "region": "eu"}),
}

// summarize renders each parameter set as sorted flattened k=v pairs, the
// way the assertions read best.
func summarize(params []generators.Params, keys ...string) []string {
	var out []string
	for _, p := range params {
		flat := generators.Flatten(p)
		var parts []string
		for _, k := range keys {
			parts = append(parts, k+"="+flat[k])
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

func TestGenerate(t *testing.T) {
	cases := []struct {
		name    string
		gens    string
		keys    []string
		want    []string
		wantErr string
	}{
		{name: "list elements are objects with arbitrary JSON",
			gens: `[{list: {elements: [{cluster: staging-1, replicas: 1, nested: {a: b}}, {cluster: prod-eu-1, replicas: 3, nested: {a: c}}]}}]`,
			keys: []string{"cluster", "replicas", "nested.a"},
			want: []string{"cluster=staging-1 replicas=1 nested.a=b", "cluster=prod-eu-1 replicas=3 nested.a=c"}},
		{name: "list element that is not an object",
			gens:    `[{list: {elements: [{cluster: a}, "just-a-string"]}}]`,
			wantErr: `generators[0] (list): elements[1]: must be an object of parameters`},
		{name: "list element that is a list",
			gens:    `[{list: {elements: [[1, 2]]}}]`,
			wantErr: `elements[0]: must be an object`},
		{name: "clusters by matchLabels",
			gens: `[{clusters: {selector: {matchLabels: {env: prod}}}}]`,
			keys: []string{"name", "server", "metadata.labels.region", "metadata.annotations.owner"},
			want: []string{"name=prod-eu-1 server=https://prod-eu-1.example:6443 metadata.labels.region=eu metadata.annotations.owner=team-prod-eu-1",
				"name=prod-us-1 server=https://prod-us-1.example:6443 metadata.labels.region=us metadata.annotations.owner=team-prod-us-1"}},
		{name: "clusters by matchExpressions, with templated values",
			gens: `[{clusters: {selector: {matchExpressions: [{key: region, operator: In, values: [eu]}]}, values: {tier: gold, ns: '{{ .metadata.labels.env }}-apps'}}}]`,
			keys: []string{"name", "values.tier", "values.ns"},
			want: []string{"name=prod-eu-1 values.tier=gold values.ns=prod-apps", "name=staging-1 values.tier=gold values.ns=staging-apps"}},
		{name: "clusters with an empty selector select all",
			gens: `[{clusters: {}}]`, keys: []string{"name"},
			want: []string{"name=prod-eu-1", "name=prod-us-1", "name=staging-1"}},
		{name: "clusters values with a missing key",
			gens:    `[{clusters: {values: {x: '{{ .metadata.labels.tier }}'}}}]`,
			wantErr: `generators[0] (clusters): cluster prod-eu-1: values.x: parameter "tier" is not set`},
		{name: "post-selector on flattened parameters",
			gens: `[{clusters: {}, selector: {matchLabels: {metadata.labels.region: eu}, matchExpressions: [{key: name, operator: NotIn, values: [staging-1]}]}}]`,
			keys: []string{"name"}, want: []string{"name=prod-eu-1"}},
		{name: "matrix of clusters and a list",
			gens: `[{matrix: {generators: [{clusters: {selector: {matchLabels: {env: prod}}}}, {list: {elements: [{app: web}, {app: api}]}}]}}]`,
			keys: []string{"name", "app"},
			want: []string{"name=prod-eu-1 app=web", "name=prod-eu-1 app=api", "name=prod-us-1 app=web", "name=prod-us-1 app=api"}},
		{name: "matrix child using its sibling's parameters",
			gens: `[{matrix: {generators: [{list: {elements: [{env: prod}, {env: staging}]}}, {clusters: {selector: {matchLabels: {env: '{{ .env }}'}}, values: {label: '{{ .env }}/{{ .name }}'}}}]}}]`,
			keys: []string{"env", "name", "values.label"},
			want: []string{"env=prod name=prod-eu-1 values.label=prod/prod-eu-1", "env=prod name=prod-us-1 values.label=prod/prod-us-1", "env=staging name=staging-1 values.label=staging/staging-1"}},
		{name: "a matrix child may not override an earlier child's parameter",
			gens:    `[{matrix: {generators: [{clusters: {selector: {matchLabels: {env: staging}}}}, {list: {elements: [{name: prod-eu-1}]}}]}}]`,
			wantErr: `generators[0] (matrix): generators[1] (list) sets parameter "name", which generators[0] (clusters) already set to another value`},
		{name: "a matrix child may repeat an earlier child's value",
			gens: `[{matrix: {generators: [{clusters: {selector: {matchLabels: {env: staging}}}}, {list: {elements: [{name: staging-1, app: web}]}}]}}]`,
			keys: []string{"name", "app"}, want: []string{"name=staging-1 app=web"}},
		{name: "allowOverrides lets a matrix child override",
			gens: `[{matrix: {allowOverrides: true, generators: [{clusters: {selector: {matchLabels: {env: staging}}}}, {list: {elements: [{name: prod-eu-1}]}}]}}]`,
			keys: []string{"name", "server"}, want: []string{"name=prod-eu-1 server=https://staging-1.example:6443"}},
		{name: "nested matrix of three",
			gens: `[{matrix: {generators: [{list: {elements: [{a: "1"}, {a: "2"}]}}, {matrix: {generators: [{list: {elements: [{b: x}]}}, {list: {elements: [{c: '{{ .a }}{{ .b }}'}]}}]}}]}}]`,
			keys: []string{"a", "b", "c"},
			want: []string{"a=1 b=x c=1x", "a=2 b=x c=2x"}},
		{name: "matrix with one child",
			gens:    `[{matrix: {generators: [{clusters: {}}]}}]`,
			wantErr: "a matrix needs two or more generators, got 1"},
		{name: "matrix child with a missing key",
			gens:    `[{matrix: {generators: [{list: {elements: [{env: prod}]}}, {list: {elements: [{x: '{{ .region }}'}]}}]}}]`,
			wantErr: `generators[0] (matrix): generators[1] (list): generator.list.elements[0].x: parameter "region" is not set`},
		{name: "merge overrides the base on merge keys",
			gens: `[{merge: {mergeKeys: [name], generators: [{clusters: {values: {replicas: "1"}}}, {list: {elements: [{name: prod-eu-1, values: {replicas: "5"}}, {name: unknown, values: {replicas: "9"}}]}}]}}]`,
			keys: []string{"name", "values.replicas", "metadata.labels.env"},
			want: []string{"name=prod-eu-1 values.replicas=5 metadata.labels.env=prod", "name=prod-us-1 values.replicas=1 metadata.labels.env=prod", "name=staging-1 values.replicas=1 metadata.labels.env=staging"}},
		{name: "merge on a nested key",
			gens: `[{merge: {mergeKeys: [metadata.labels.region], generators: [{list: {elements: [{metadata: {labels: {region: eu}}, a: "1"}]}}, {list: {elements: [{metadata: {labels: {region: eu}}, a: "2"}]}}]}}]`,
			keys: []string{"a"}, want: []string{"a=2"}},
		{name: "merge key missing",
			gens:    `[{merge: {mergeKeys: [nope], generators: [{clusters: {}}, {list: {elements: [{name: x}]}}]}}]`,
			wantErr: `merge key "nope" is not a parameter`},
		{name: "merge keys not unique",
			gens:    `[{merge: {mergeKeys: [env], generators: [{list: {elements: [{env: a}, {env: a}]}}, {list: {elements: [{env: a}]}}]}}]`,
			wantErr: "two parameter sets share merge keys env=a",
		},
		{name: "several generators concatenate",
			gens: `[{list: {elements: [{name: a}]}}, {list: {elements: [{name: b}]}}]`,
			keys: []string{"name"}, want: []string{"name=a", "name=b"}},
		{name: "an entry with two kinds",
			gens:    `[{list: {elements: [{a: b}]}, clusters: {}}]`,
			wantErr: "exactly one of list, clusters, git, matrix or merge"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := generators.New(generators.Options{Clusters: fleet})
			got, err := e.Generate(t.Context(), gens(t, tc.gens))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				assert.Nil(t, got, "an error must come with no parameter sets")
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.want, summarize(got, tc.keys...))
		})
	}
}

func TestCap(t *testing.T) {
	cases := []struct {
		name string
		max  int
		gens string
	}{
		{name: "matrix product over the cap", max: 5,
			gens: `[{matrix: {generators: [{clusters: {}}, {list: {elements: [{a: "1"}, {a: "2"}]}}]}}]`},
		{name: "several generators summing over the cap", max: 4,
			gens: `[{clusters: {}}, {clusters: {}}]`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := generators.New(generators.Options{Clusters: fleet, MaxParams: tc.max})
			got, err := e.Generate(t.Context(), gens(t, tc.gens))
			require.ErrorIs(t, err, generators.ErrTooMany)
			assert.Nil(t, got)
		})
	}
	t.Run("default cap is 10,000", func(t *testing.T) {
		var elements []string
		for range 101 {
			elements = append(elements, `{a: b}`)
		}
		list := `{list: {elements: [` + strings.Join(elements, ",") + `]}}`
		e := generators.New(generators.Options{})
		_, err := e.Generate(t.Context(), gens(t, `[{matrix: {generators: [`+list+`, `+list+`]}}]`))
		require.ErrorIs(t, err, generators.ErrTooMany)
		assert.Contains(t, err.Error(), "10000")
	})
}

type failingClusters struct{}

func (failingClusters) ListMemberClusters(context.Context) ([]flotillav1.MemberCluster, error) {
	return nil, errors.New("hub unreachable")
}

func TestInventoryErrorFailsTheWholeSet(t *testing.T) {
	e := generators.New(generators.Options{Clusters: failingClusters{}})
	got, err := e.Generate(t.Context(), gens(t, `[{list: {elements: [{name: a}]}}, {clusters: {}}]`))
	require.Error(t, err)
	assert.Contains(t, err.Error(), "generators[1] (clusters): list MemberClusters: hub unreachable")
	assert.Nil(t, got, "the list generator's sets must not be returned alone")
}

func TestFlatten(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want map[string]string
	}{
		{name: "scalars", in: `{"s":"x","n":3,"f":1.5,"b":true,"z":null}`, want: map[string]string{"s": "x", "n": "3", "f": "1.5", "b": "true", "z": ""}},
		{name: "nested", in: `{"path":{"basename":"a","segments":["apps","a"]}}`, want: map[string]string{"path.basename": "a", "path.segments.0": "apps", "path.segments.1": "a"}},
		{name: "empty", in: `{}`, want: map[string]string{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var p generators.Params
			dec := json.NewDecoder(strings.NewReader(tc.in))
			dec.UseNumber()
			require.NoError(t, dec.Decode(&p))
			assert.Equal(t, tc.want, generators.Flatten(p))
		})
	}
}
