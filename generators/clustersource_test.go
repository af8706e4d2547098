package generators_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/flotilla-dev/flotilla/generators"
)

func TestReadClusters(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{name: "documents and a list",
			in: `apiVersion: flotilla.dev/v1alpha1
kind: MemberCluster
metadata: {name: a, labels: {env: prod}}
spec: {kubeconfigSecretRef: {name: a-kubeconfig}}
---
---
apiVersion: v1
kind: List
items:
- {apiVersion: flotilla.dev/v1alpha1, kind: MemberCluster, metadata: {name: b}}
- {apiVersion: flotilla.dev/v1alpha1, kind: MemberCluster, metadata: {name: c}}
`, want: []string{"a", "b", "c"}},
		{name: "malformed YAML", in: "kind: MemberCluster\nmetadata: [", wantErr: "clusters document 1"},
		{name: "another kind", in: "kind: Secret\nmetadata: {name: x}\n", wantErr: `kind "Secret" is not a MemberCluster`},
		{name: "no name", in: "kind: MemberCluster\nmetadata: {}\n", wantErr: "needs metadata.name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := generators.ReadClusters(strings.NewReader(tc.in))
			if tc.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.wantErr)
				return
			}
			require.NoError(t, err)
			var names []string
			for _, c := range got {
				names = append(names, c.Name)
			}
			assert.Equal(t, tc.want, names)
		})
	}
}
