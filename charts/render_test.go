package charts_test

import (
	"testing"

	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/charts"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/internal/testenv"
)

func kinds(objs []*unstructured.Unstructured) []string {
	var out []string
	for _, o := range objs {
		out = append(out, o.GetKind()+"/"+o.GetName())
	}
	return out
}

func find(t *testing.T, objs []*unstructured.Unstructured, kind, name string) *unstructured.Unstructured {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == kind && o.GetName() == name {
			return o
		}
	}
	t.Fatalf("%s/%s not rendered; have %v", kind, name, kinds(objs))
	return nil
}

func containerArgs(t *testing.T, d *unstructured.Unstructured) []string {
	t.Helper()
	cs, _, err := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	require.NoError(t, err)
	require.Len(t, cs, 1)
	args, _, err := unstructured.NestedStringSlice(cs[0].(map[string]any), "args")
	require.NoError(t, err)
	return args
}

func TestRenderCharts(t *testing.T) {
	cases := []struct {
		name, chart string
		values      map[string]any
		want        []string // Kind/name, in install order
		args        []string // expected among the container's args
		replicas    int64
		image       string
		wantErr     string
	}{
		{name: "hub defaults", chart: charts.Hub,
			want: []string{"ServiceAccount/flotilla-hub", "CustomResourceDefinition/applications.flotilla.dev", "CustomResourceDefinition/applicationsets.flotilla.dev",
				"CustomResourceDefinition/memberclusters.flotilla.dev", "CustomResourceDefinition/projects.flotilla.dev", "ClusterRole/flotilla-hub", "ClusterRoleBinding/flotilla-hub", "Role/flotilla-hub", "RoleBinding/flotilla-hub", "Deployment/flotilla-hub"},
			args: []string{"--namespace=flotilla-system", "--leader-elect=false", "--zap-log-level=info", "--cluster-api-import=false"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-hub:0.1.0"},
		{name: "hub two replicas elect a leader", chart: charts.Hub,
			values: map[string]any{"replicas": 2, "logLevel": "debug", "extraArgs": []any{"--delivery-workers=64"}, "image": map[string]any{"tag": "v9"}},
			args:   []string{"--leader-elect=true", "--zap-log-level=debug", "--delivery-workers=64"}, replicas: 2, image: "ghcr.io/flotilla-dev/flotilla-hub:v9"},
		{name: "hub copying CAPI labels", chart: charts.Hub,
			values: map[string]any{"capi": map[string]any{"enabled": true, "copyLabels": []any{"env", "fleet.example.com/*"}}},
			args:   []string{"--cluster-api-import=true", "--capi-copy-labels=env,fleet.example.com/*"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-hub:0.1.0"},
		{name: "hub with the dashboard", chart: charts.Hub, values: map[string]any{"dashboard": map[string]any{"enabled": true, "ingress": map[string]any{"enabled": true, "tlsSecretName": "dash-tls"}}},
			want: []string{"ServiceAccount/flotilla-hub", "CustomResourceDefinition/applications.flotilla.dev", "CustomResourceDefinition/applicationsets.flotilla.dev",
				"CustomResourceDefinition/memberclusters.flotilla.dev", "CustomResourceDefinition/projects.flotilla.dev", "ClusterRole/flotilla-hub", "ClusterRoleBinding/flotilla-hub", "Role/flotilla-hub", "RoleBinding/flotilla-hub",
				"Service/flotilla-dashboard", "Deployment/flotilla-hub", "Ingress/flotilla-dashboard"},
			args: []string{"--dashboard-bind-address=:8090", "--dashboard-secure-cookies=true"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-hub:0.1.0"},
		{name: "hub with webhooks", chart: charts.Hub, values: map[string]any{"webhook": map[string]any{"enabled": true}},
			args: []string{"--webhook-bind-address=:8091"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-hub:0.1.0"},
		{name: "hub without deployment", chart: charts.Hub, values: map[string]any{"deployment": map[string]any{"create": false}},
			want: []string{"ServiceAccount/flotilla-hub", "CustomResourceDefinition/applications.flotilla.dev", "CustomResourceDefinition/applicationsets.flotilla.dev",
				"CustomResourceDefinition/memberclusters.flotilla.dev", "CustomResourceDefinition/projects.flotilla.dev", "ClusterRole/flotilla-hub", "ClusterRoleBinding/flotilla-hub", "Role/flotilla-hub", "RoleBinding/flotilla-hub"}},
		{name: "agent defaults", chart: charts.Agent,
			want: []string{"ServiceAccount/flotilla-hub", "ServiceAccount/flotilla-agent", "ServiceAccount/flotilla-default", "CustomResourceDefinition/applications.flotilla.dev",
				"ClusterRole/flotilla-agent", "ClusterRole/flotilla-agent-observe", "ClusterRoleBinding/flotilla-agent", "ClusterRoleBinding/flotilla-agent-observe",
				"Role/flotilla-hub", "Role/flotilla-agent-impersonate", "Role/flotilla-agent-self", "RoleBinding/flotilla-hub", "RoleBinding/flotilla-agent-impersonate", "RoleBinding/flotilla-agent-self", "Deployment/flotilla-agent"},
			args: []string{"--namespace=flotilla-system", "--allow-remote-bases=false", "--leader-elect=false", "--default-service-account=flotilla-default",
				"--protect-agent-namespace=true", "--deny-cluster-admin-bindings=true", "--deny-cluster-scoped=false"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-agent:0.1.0"},
		{name: "agent with a spoke policy", chart: charts.Agent, values: map[string]any{"policy": map[string]any{"denyClusterScoped": true,
			"allowedNamespaces": []any{"team-*"}, "deniedKinds": []any{"rbac.authorization.k8s.io/ClusterRoleBinding", "Secret"}}},
			args: []string{"--deny-cluster-scoped=true", "--allowed-namespaces=team-*", "--denied-kinds=rbac.authorization.k8s.io/ClusterRoleBinding,Secret"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-agent:0.1.0"},
		{name: "agent namespaced", chart: charts.Agent, values: map[string]any{"rbac": map[string]any{"scope": "namespaces", "namespaces": []any{"team-a", "team-b"}}},
			args: []string{"--watch-namespaces=team-a,team-b"}, replicas: 1, image: "ghcr.io/flotilla-dev/flotilla-agent:0.1.0"},
		{name: "agent bad scope", chart: charts.Agent, values: map[string]any{"rbac": map[string]any{"scope": "everything"}}, wantErr: "rbac.scope must be cluster or namespaces"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, err := charts.Render(tc.chart, flotillav1.SystemNamespace, tc.values)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			require.NotEmpty(t, r.Notes)
			if tc.want != nil {
				require.Equal(t, tc.want, kinds(r.Objects))
			}
			if tc.args == nil {
				return
			}
			deployment := map[string]string{charts.Hub: "flotilla-hub", charts.Agent: "flotilla-agent"}[tc.chart]
			d := find(t, r.Objects, "Deployment", deployment)
			got := containerArgs(t, d)
			for _, a := range tc.args {
				require.Contains(t, got, a)
			}
			n, _, err := unstructured.NestedInt64(d.Object, "spec", "replicas")
			require.NoError(t, err)
			require.Equal(t, tc.replicas, n)
			cs, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
			require.Equal(t, tc.image, cs[0].(map[string]any)["image"])
		})
	}
}

// TestHubIdentityMatchesRemote keeps the chart's Role for the hub on a spoke
// in step with fleet/spokes.HubRBAC, which the hub's own tests use.
func TestHubIdentityMatchesRemote(t *testing.T) {
	r, err := charts.Render(charts.Agent, flotillav1.SystemNamespace, nil)
	require.NoError(t, err)
	var got rbacv1.Role
	require.NoError(t, runtime.DefaultUnstructuredConverter.FromUnstructured(find(t, r.Objects, "Role", spokes.HubRoleName).Object, &got))
	want, _ := spokes.HubRBAC(flotillav1.SystemNamespace, rbacv1.Subject{})
	require.Equal(t, want.Rules, got.Rules)
}

// TestChartsApplyToRealAPIServer server-side dry-run applies every object
// both charts render, under several value sets, to a real kube-apiserver:
// the schema, RBAC references and CRDs must all be accepted.
func TestChartsApplyToRealAPIServer(t *testing.T) {
	env := testenv.Start(t)
	ctx := t.Context()
	for _, ns := range []string{flotillav1.SystemNamespace, "team-a"} {
		require.NoError(t, client.IgnoreAlreadyExists(env.Client.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})))
	}
	sets := []struct {
		chart  string
		values map[string]any
	}{
		{charts.Hub, nil},
		{charts.Hub, map[string]any{"replicas": 3, "capi": map[string]any{"enabled": true}, "nodeSelector": map[string]any{"kubernetes.io/os": "linux"},
			"tolerations": []any{map[string]any{"key": "dedicated", "operator": "Exists"}}, "imagePullSecrets": []any{map[string]any{"name": "regcred"}}}},
		{charts.Agent, nil},
		{charts.Agent, map[string]any{"rbac": map[string]any{"scope": "namespaces", "namespaces": []any{"team-a"}}, "replicas": 2}},
	}
	for _, s := range sets {
		r, err := charts.Render(s.chart, flotillav1.SystemNamespace, s.values)
		require.NoError(t, err)
		for _, o := range r.Objects {
			err := env.Client.Patch(ctx, o.DeepCopy(), client.Apply, client.DryRunAll, client.FieldOwner("chart-test"), client.ForceOwnership)
			require.NoError(t, err, "%s %v: dry-run apply %s/%s", s.chart, s.values, o.GetKind(), o.GetName())
		}
	}
}
