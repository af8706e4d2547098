package clusters

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
)

func TestStatusChangedOnlyForNews(t *testing.T) {
	r := &Reconciler{HeartbeatGrace: 40 * time.Second}
	now := time.Now()
	hb := metav1.NewTime(now)
	p := probe{
		ready:  metav1.Condition{Type: flotillav1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Reachable", Message: "ok"},
		creds:  metav1.Condition{Type: flotillav1.ConditionCredentialsValid, Status: metav1.ConditionTrue, Reason: "Authenticated", Message: "ok"},
		agent:  metav1.Condition{Type: flotillav1.ConditionAgentAvailable, Status: metav1.ConditionTrue, Reason: "Heartbeat", Message: "ok"},
		server: "https://a", version: "v1.37.2", agentVer: "v1", heartbeat: &hb,
	}
	mc := &flotillav1.MemberCluster{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	assert.True(t, r.statusChanged(mc, p), "nothing recorded yet")

	last := metav1.NewTime(now.Add(-5 * time.Second))
	mc.Status = flotillav1.MemberClusterStatus{ObservedGeneration: 2, Server: "https://a", KubernetesVersion: "v1.37.2", AgentVersion: "v1", LastHeartbeatTime: &last}
	for _, c := range []metav1.Condition{p.ready, p.creds, p.agent} {
		c.ObservedGeneration = 2
		mc.Status.Conditions = append(mc.Status.Conditions, c)
	}
	assert.False(t, r.statusChanged(mc, p), "a heartbeat 5s newer alone is not worth a write")

	old := metav1.NewTime(now.Add(-21 * time.Second))
	mc.Status.LastHeartbeatTime = &old
	assert.True(t, r.statusChanged(mc, p), "a heartbeat older than half the grace is refreshed")
	mc.Status.LastHeartbeatTime = &last

	down := p
	down.ready.Status, down.ready.Reason = metav1.ConditionUnknown, "Unreachable"
	assert.True(t, r.statusChanged(mc, down), "a condition change is written at once")

	upgraded := p
	upgraded.agentVer = "v2"
	assert.True(t, r.statusChanged(mc, upgraded), "a new agent version is written at once")

	mc.Generation = 3
	assert.True(t, r.statusChanged(mc, p), "a new generation is observed at once")
}

func TestProbeClientKeptWhileSecretUnchanged(t *testing.T) {
	r := &Reconciler{clients: map[string]*probeClient{}, backoff: map[string]time.Duration{}, Limits: kubeconfig.DefaultLimits}
	kubeconfig := []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: secret-token}}]
contexts: [{name: c, context: {cluster: c, user: u}}]
current-context: c
`)
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{UID: "u1", ResourceVersion: "1"}}
	a, err := r.probeClient("c", secret, "value", kubeconfig)
	require.NoError(t, err)
	assert.Equal(t, "https://127.0.0.1:1", a.cfg.Host)
	b, err := r.probeClient("c", secret, "value", kubeconfig)
	require.NoError(t, err)
	assert.Same(t, a, b, "same Secret version: same client")

	secret.ResourceVersion = "2"
	c, err := r.probeClient("c", secret, "value", kubeconfig)
	require.NoError(t, err)
	assert.NotSame(t, a, c, "the Secret changed: rebuilt")

	secret.ResourceVersion = "3"
	_, err = r.probeClient("c", secret, "value", []byte("not: [a kubeconfig"))
	assert.Error(t, err, "a broken kubeconfig is an error, not the old client")

	r.drop("c")
	assert.Empty(t, r.clients)
}

// TestMemberClusterKstatus: cli-utils' kstatus reads a probed cluster as
// Current when reachable, InProgress while unreachable, and Failed when its
// credentials are refused; the status says so in Reconciling/Stalled.
func TestMemberClusterKstatus(t *testing.T) {
	cond := func(typ string, s metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: s, Reason: reason, Message: reason}
	}
	agentUnknown := cond(flotillav1.ConditionAgentAvailable, metav1.ConditionUnknown, flotillav1.ReasonClusterNotReady)
	cases := []struct {
		name string
		p    probe
		want status.Status
	}{
		{"reachable", probe{ready: cond(flotillav1.ConditionReady, metav1.ConditionTrue, flotillav1.ReasonReachable),
			creds: cond(flotillav1.ConditionCredentialsValid, metav1.ConditionTrue, flotillav1.ReasonAuthenticated),
			agent: cond(flotillav1.ConditionAgentAvailable, metav1.ConditionFalse, flotillav1.ReasonAgentNotFound)}, status.CurrentStatus},
		{"unreachable", probe{ready: cond(flotillav1.ConditionReady, metav1.ConditionUnknown, flotillav1.ReasonUnreachable),
			creds: cond(flotillav1.ConditionCredentialsValid, metav1.ConditionUnknown, flotillav1.ReasonUnreachable), agent: agentUnknown}, status.InProgressStatus},
		{"token refused", probe{ready: cond(flotillav1.ConditionReady, metav1.ConditionFalse, flotillav1.ReasonUnauthorized),
			creds: cond(flotillav1.ConditionCredentialsValid, metav1.ConditionFalse, flotillav1.ReasonUnauthorized), agent: agentUnknown}, status.FailedStatus},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var conds []any
			for _, c := range append([]metav1.Condition{tc.p.ready, tc.p.creds, tc.p.agent}, tc.p.summary()...) {
				conds = append(conds, map[string]any{"type": c.Type, "status": string(c.Status), "reason": c.Reason, "message": c.Message})
			}
			u := &unstructured.Unstructured{Object: map[string]any{
				"apiVersion": flotillav1.GroupVersion.String(), "kind": "MemberCluster",
				"metadata": map[string]any{"name": "c", "generation": int64(2)},
				"status":   map[string]any{"observedGeneration": int64(2), "conditions": conds},
			}}
			res, err := status.Compute(u)
			require.NoError(t, err)
			assert.Equal(t, tc.want, res.Status, res.Message)
		})
	}
}

// TestTokenExpiryIsReported: a token expiring within the warning window
// keeps CredentialsValid True but says when, once (the message holds an
// absolute time, so probes do not rewrite it).
func TestTokenExpiryIsReported(t *testing.T) {
	r := &Reconciler{ExpiryWarning: 14 * 24 * time.Hour}
	secret := func(exp time.Time) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{flotillav1.AnnotationTokenExpires: exp.UTC().Format(time.RFC3339)}}}
	}
	authenticated := func() probe {
		return probe{creds: metav1.Condition{Type: flotillav1.ConditionCredentialsValid, Status: metav1.ConditionTrue, Reason: flotillav1.ReasonAuthenticated}}
	}
	far := authenticated()
	r.checkExpiry(&far, secret(time.Now().Add(300*24*time.Hour)))
	assert.Equal(t, flotillav1.ReasonAuthenticated, far.creds.Reason)
	require.NotNil(t, far.expires)

	soon := authenticated()
	exp := time.Now().Add(3 * 24 * time.Hour)
	r.checkExpiry(&soon, secret(exp))
	assert.Equal(t, metav1.ConditionTrue, soon.creds.Status, "the token still works")
	assert.Equal(t, flotillav1.ReasonTokenExpiringSoon, soon.creds.Reason)
	assert.Contains(t, soon.creds.Message, exp.UTC().Format(time.RFC3339))
	again := authenticated()
	r.checkExpiry(&again, secret(exp))
	assert.Equal(t, soon.creds.Message, again.creds.Message, "the same message on every probe")

	none := authenticated()
	r.checkExpiry(&none, &corev1.Secret{})
	assert.Nil(t, none.expires)
}
