package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

// A minimal valid ApplicationSet; cases replace the generators line.
const appSetTemplate = `
apiVersion: flotilla.dev/v1alpha1
kind: ApplicationSet
metadata: {name: NAME, namespace: default}
spec:
  generators: GENERATORS
  template:
    metadata: {name: '{{ .name }}-guestbook'}
    spec:
      source: {repoURL: 'https://git.example/org/deploy.git', targetRevision: main, path: 'apps/guestbook/overlays/{{ .metadata.labels.env }}'}
      destination: {cluster: '{{ .name }}', namespace: guestbook}
      syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}
  SYNCPOLICY
`

func appSet(name, generators, syncPolicy string) string {
	r := strings.NewReplacer("NAME", name, "GENERATORS", generators, "SYNCPOLICY", syncPolicy)
	return r.Replace(appSetTemplate)
}

const application = `
apiVersion: flotilla.dev/v1alpha1
kind: Application
metadata: {name: NAME, namespace: default}
spec:
  source: {repoURL: 'https://git.example/org/deploy.git', targetRevision: main, path: apps/guestbook}
  destination: DESTINATION
  SYNCPOLICY
`

func app(name, destination, syncPolicy string) string {
	return strings.NewReplacer("NAME", name, "DESTINATION", destination, "SYNCPOLICY", syncPolicy).Replace(application)
}

const memberCluster = `
apiVersion: flotilla.dev/v1alpha1
kind: MemberCluster
metadata: {name: NAME, labels: {env: prod}}
spec: SPEC
`

func cluster(name, spec string) string {
	return strings.NewReplacer("NAME", name, "SPEC", spec).Replace(memberCluster)
}

func decode(t *testing.T, doc string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	require.NoError(t, yaml.Unmarshal([]byte(doc), &u.Object), "test case YAML must parse:\n%s", doc)
	return u
}

func TestCRDValidation(t *testing.T) {
	env := testenv.Start(t)

	cases := []struct {
		name    string
		doc     string
		wantErr string // empty: accepted
	}{
		// Accepted.
		{name: "list generator", doc: appSet("list", `[{list: {elements: [{cluster: staging-1, replicas: "1"}]}}]`, "")},
		{name: "clusters generator with values and post-selector", doc: appSet("clusters",
			`[{clusters: {selector: {matchLabels: {env: prod}, matchExpressions: [{key: region, operator: In, values: [eu]}]}, values: {tier: gold}}, selector: {matchLabels: {values.tier: gold}}}]`, "")},
		{name: "git directories generator", doc: appSet("gitdirs",
			`[{git: {repoURL: 'https://git.example/org/deploy.git', revision: main, requeueAfterSeconds: 60, directories: [{path: 'apps/*'}, {path: apps/legacy, exclude: true}]}}]`, "")},
		{name: "git files generator", doc: appSet("gitfiles",
			`[{git: {repoURL: 'https://git.example/org/deploy.git', files: [{path: 'clusters/**/config.yaml'}]}}]`, "")},
		{name: "matrix of clusters and git", doc: appSet("matrix",
			`[{matrix: {generators: [{clusters: {}}, {git: {repoURL: 'https://git.example/org/deploy.git', directories: [{path: 'apps/*'}]}}]}}]`, "")},
		{name: "matrix nesting a merge", doc: appSet("nested",
			`[{matrix: {generators: [{list: {elements: [{a: b}]}}, {merge: {mergeKeys: [name], generators: [{clusters: {}}, {list: {elements: [{name: x}]}}]}}]}}]`, "")},
		{name: "merge generator", doc: appSet("merge",
			`[{merge: {mergeKeys: [name], generators: [{clusters: {}}, {list: {elements: [{name: prod-eu-1, replicas: "3"}]}}]}}]`, "")},
		{name: "every applicationsSync value", doc: appSet("policy", `[{list: {elements: [{a: b}]}}]`,
			`syncPolicy: {applicationsSync: create-only, preserveResourcesOnDeletion: true}`)},
		{name: "application", doc: app("guestbook", `{cluster: prod-eu-1, namespace: guestbook}`,
			`syncPolicy: {automated: {prune: true}, syncOptions: [CreateNamespace=true]}`)},
		{name: "member cluster", doc: cluster("prod-eu-1", `{kubeconfigSecretRef: {name: prod-eu-1-kubeconfig}}`)},

		// Rejected by CEL rules, each with its message.
		{name: "generator with two kinds", doc: appSet("twokinds", `[{list: {elements: []}, clusters: {}}]`, ""),
			wantErr: "each generator entry needs exactly one of list, clusters, git, matrix or merge"},
		{name: "generator with no kind", doc: appSet("nokind", `[{selector: {matchLabels: {a: b}}}]`, ""),
			wantErr: "each generator entry needs exactly one of list, clusters, git, matrix or merge"},
		{name: "matrix with one child", doc: appSet("matrix1", `[{matrix: {generators: [{clusters: {}}]}}]`, ""),
			wantErr: "a matrix needs two or more generators"},
		{name: "merge with one child", doc: appSet("merge1", `[{merge: {mergeKeys: [name], generators: [{clusters: {}}]}}]`, ""),
			wantErr: "a merge needs two or more generators"},
		{name: "nested matrix with one child", doc: appSet("nested1",
			`[{matrix: {generators: [{clusters: {}}, {matrix: {generators: [{clusters: {}}]}}]}}]`, ""),
			wantErr: "a matrix needs two or more generators"},
		{name: "nested merge with one child", doc: appSet("nestedmerge1",
			`[{merge: {mergeKeys: [name], generators: [{clusters: {}}, {merge: {mergeKeys: [name], generators: [{clusters: {}}]}}]}}]`, ""),
			wantErr: "a merge needs two or more generators"},
		{name: "matrix child with two kinds", doc: appSet("child2",
			`[{matrix: {generators: [{clusters: {}, list: {elements: []}}, {clusters: {}}]}}]`, ""),
			wantErr: "each generator entry needs exactly one of list, clusters, git, matrix or merge"},
		{name: "innermost child with two kinds", doc: appSet("inner2",
			`[{matrix: {generators: [{clusters: {}}, {matrix: {generators: [{clusters: {}, git: {repoURL: x, files: [{path: a.json}]}}, {clusters: {}}]}}]}}]`, ""),
			wantErr: "each generator entry needs exactly one of list, clusters or git"},
		{name: "git with directories and files", doc: appSet("gitboth",
			`[{git: {repoURL: 'https://git.example/r.git', directories: [{path: a}], files: [{path: b.json}]}}]`, ""),
			wantErr: "a git generator needs exactly one of directories or files"},
		{name: "git with neither directories nor files", doc: appSet("gitnone",
			`[{git: {repoURL: 'https://git.example/r.git'}}]`, ""),
			wantErr: "a git generator needs exactly one of directories or files"},
		{name: "git directory escaping the repo", doc: appSet("dotdot",
			`[{git: {repoURL: 'https://git.example/r.git', directories: [{path: 'apps/../../etc'}]}}]`, ""),
			wantErr: "path must stay inside the repository: '..' is not allowed"},
		{name: "git file with absolute path", doc: appSet("abs",
			`[{git: {repoURL: 'https://git.example/r.git', files: [{path: '/etc/passwd'}]}}]`, ""),
			wantErr: "path is relative to the repository root and must not start with '/'"},
		{name: "unknown applicationsSync", doc: appSet("badpolicy", `[{list: {elements: [{a: b}]}}]`,
			`syncPolicy: {applicationsSync: delete-everything}`),
			wantErr: `supported values: "create-only", "create-update", "create-delete", "sync"`},
		{name: "application without destination cluster", doc: app("nodest", `{cluster: "", namespace: guestbook}`, ""),
			wantErr: "destination.cluster is required: name the MemberCluster this Application runs on"},
		{name: "template without destination cluster", doc: strings.Replace(appSet("tplnodest", `[{list: {elements: [{a: b}]}}]`, ""),
			`cluster: '{{ .name }}'`, `cluster: ''`, 1),
			wantErr: "destination.cluster is required: name the MemberCluster this Application runs on"},
		{name: "malformed sync option", doc: app("badopt", `{cluster: c1}`, `syncPolicy: {syncOptions: ["rm -rf /"]}`),
			wantErr: "spec.syncPolicy.syncOptions[0]"},
		{name: "member cluster without kubeconfig secret", doc: cluster("nocreds", `{paused: true}`),
			wantErr: "spec.kubeconfigSecretRef: Required value"},
		{name: "member cluster with a bad agent namespace", doc: cluster("badns", `{kubeconfigSecretRef: {name: s}, agentNamespace: "Not_A_Namespace"}`),
			wantErr: "spec.agentNamespace"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := decode(t, tc.doc)
			err := env.Client.Create(t.Context(), obj)
			if tc.wantErr == "" {
				require.NoError(t, err)
				return
			}
			require.Error(t, err, "the apiserver accepted an invalid object")
			assert.Contains(t, err.Error(), tc.wantErr)
		})
	}
}

func TestCRDDefaults(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()

	require.NoError(t, env.Client.Create(ctx, decode(t, appSet("defaults", `[{list: {elements: [{a: b}]}}]`, "syncPolicy: {}"))))
	set := &flotillav1.ApplicationSet{}
	require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Namespace: "default", Name: "defaults"}, set))
	assert.Equal(t, flotillav1.ApplicationsSyncSync, set.Spec.SyncPolicy.ApplicationsSync)
	require.Len(t, set.Spec.Generators, 1)
	require.NotNil(t, set.Spec.Generators[0].List)
	assert.JSONEq(t, `{"a":"b"}`, string(set.Spec.Generators[0].List.Elements[0].Raw))

	require.NoError(t, env.Client.Create(ctx, decode(t, cluster("defaulted", `{kubeconfigSecretRef: {name: defaulted-kubeconfig}}`))))
	mc := &flotillav1.MemberCluster{}
	require.NoError(t, env.Client.Get(ctx, client.ObjectKey{Name: "defaulted"}, mc))
	assert.Equal(t, flotillav1.SystemNamespace, mc.Spec.AgentNamespace)
	assert.Equal(t, "value", mc.Spec.KubeconfigSecretRef.Key)
}
