package applicationset

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
)

func TestPollInterval(t *testing.T) {
	cases := []struct {
		name string
		gens string
		want time.Duration
	}{
		{name: "no git generator", gens: `[{list: {elements: [{a: b}]}}]`, want: 0},
		{name: "git uses the default", gens: `[{git: {repoURL: r, directories: [{path: a}]}}]`, want: 3 * time.Minute},
		{name: "requeueAfterSeconds wins", gens: `[{git: {repoURL: r, requeueAfterSeconds: 30, directories: [{path: a}]}}]`, want: 30 * time.Second},
		{name: "nested git, shortest wins", gens: `[{git: {repoURL: r, directories: [{path: a}]}}, {matrix: {generators: [{clusters: {}}, {git: {repoURL: r, requeueAfterSeconds: 60, files: [{path: a.json}]}}]}}]`, want: time.Minute},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			set := &flotillav1.ApplicationSet{}
			if err := yaml.Unmarshal([]byte(tc.gens), &set.Spec.Generators); err != nil {
				t.Fatal(err)
			}
			r := &Reconciler{GitPollInterval: DefaultGitPollInterval}
			assert.Equal(t, tc.want, r.pollInterval(set))
		})
	}
}
