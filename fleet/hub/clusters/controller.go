// Package inventory keeps the hub's MemberCluster inventory: one pooled
// client per cluster from its kubeconfig Secret, probed periodically into
// the Ready, CredentialsValid and AgentAvailable conditions.
package clusters

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	flotillav1 "github.com/flotilla-dev/flotilla/api/v1alpha1"
	"github.com/flotilla-dev/flotilla/fleet/hub/spokes"
	"github.com/flotilla-dev/flotilla/internal/kube"
	"github.com/flotilla-dev/flotilla/internal/kubeconfig"
)

const secretIndex = "spec.kubeconfigSecretRef.name"

// Reconciler probes MemberClusters.
type Reconciler struct {
	Client client.Client
	Pool   *spokes.Pool
	// Namespace holding kubeconfig Secrets (flotilla-system).
	Namespace string
	// AllowExec lets kubeconfigs run exec credential plugins.
	AllowExec bool
	Limits    kubeconfig.Limits
	// ProbeInterval between probes of a healthy cluster (default 30s).
	ProbeInterval time.Duration
	// HeartbeatGrace after which a Lease not renewed makes AgentAvailable Unknown (default 40s).
	HeartbeatGrace time.Duration
	// MaxBackoff caps the retry interval of a failing cluster (default 5m).
	MaxBackoff time.Duration
	// ExpiryWarning: a token expiring within it is reported (default 14 days).
	ExpiryWarning time.Duration
	Recorder      events.EventRecorder

	mu      sync.Mutex
	backoff map[string]time.Duration
	clients map[string]*probeClient
}

// SetupWithManager registers the controller.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.ProbeInterval == 0 {
		r.ProbeInterval = 30 * time.Second
	}
	if r.HeartbeatGrace == 0 {
		r.HeartbeatGrace = 40 * time.Second
	}
	if r.MaxBackoff == 0 {
		r.MaxBackoff = 5 * time.Minute
	}
	if r.ExpiryWarning == 0 {
		r.ExpiryWarning = 14 * 24 * time.Hour
	}
	if r.Limits.Timeout == 0 {
		r.Limits = kubeconfig.DefaultLimits
	}
	r.backoff = map[string]time.Duration{}
	r.clients = map[string]*probeClient{}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &flotillav1.MemberCluster{}, secretIndex, func(o client.Object) []string {
		return []string{o.(*flotillav1.MemberCluster).Spec.KubeconfigSecretRef.Name}
	}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("membercluster").
		For(&flotillav1.MemberCluster{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		Watches(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(r.clustersForSecret)).
		WithOptions(ctrlOptions()).
		Complete(r)
}

func (r *Reconciler) clustersForSecret(ctx context.Context, o client.Object) []reconcile.Request {
	if o.GetNamespace() != r.Namespace {
		return nil
	}
	var list flotillav1.MemberClusterList
	if err := r.Client.List(ctx, &list, client.MatchingFields{secretIndex: o.GetName()}); err != nil {
		return nil
	}
	out := make([]reconcile.Request, 0, len(list.Items))
	for _, mc := range list.Items {
		out = append(out, reconcile.Request{NamespacedName: types.NamespacedName{Name: mc.Name}})
	}
	return out
}

// probe is what one probe found.
type probe struct {
	ready, creds, agent       metav1.Condition
	server, version, agentVer string
	heartbeat                 *metav1.Time
	leaseExpires              time.Time // when the agent counts as gone without a renewal
	cfg                       *rest.Config
	hash                      string
	credsVersion              string       // the Secret's resourceVersion, once it worked
	expires                   *metav1.Time // when the token expires, if the Secret says
}

// Reconcile probes one MemberCluster and records what it found.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	mc := &flotillav1.MemberCluster{}
	if err := r.Client.Get(ctx, req.NamespacedName, mc); err != nil {
		if apierrors.IsNotFound(err) {
			r.Pool.Remove(req.Name)
			r.drop(req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !mc.DeletionTimestamp.IsZero() {
		r.Pool.Remove(mc.Name)
		r.drop(mc.Name)
		return ctrl.Result{}, nil
	}

	p := r.probe(ctx, mc)
	ok := p.ready.Status == metav1.ConditionTrue
	if ok {
		c, err := r.Pool.Upsert(mc.Name, mc.Spec.AgentNamespace, p.cfg, p.hash)
		if err != nil {
			return ctrl.Result{}, err
		}
		c.SetHealth(true, "")
		if msg := c.SyncError(); msg != "" {
			p.ready.Status, p.ready.Reason, p.ready.Message = metav1.ConditionFalse, flotillav1.ReasonSpokeCacheNotSynced, msg
			ok = false
		}
	} else if c, found := r.Pool.Get(mc.Name); found {
		c.SetHealth(false, p.ready.Message)
	}

	st := map[string]any{
		"observedGeneration": mc.Generation,
		"conditions":         kube.Conditions(mc.Status.Conditions, mc.Generation, append([]metav1.Condition{p.ready, p.creds, p.agent}, p.summary()...)...),
	}
	if p.server != "" {
		st["server"] = p.server
	}
	if p.version != "" {
		st["kubernetesVersion"] = p.version
	}
	if p.agentVer != "" {
		st["agentVersion"] = p.agentVer
	}
	if p.heartbeat != nil {
		st["lastHeartbeatTime"] = p.heartbeat.UTC().Format(time.RFC3339)
	}
	if p.credsVersion != "" {
		st["credentialsVersion"] = p.credsVersion
	}
	if p.expires != nil {
		st["credentialsExpireTime"] = p.expires.UTC().Format(time.RFC3339)
	}
	if r.statusChanged(mc, p) {
		if err := kube.ApplyStatus(ctx, r.Client, mc, "MemberCluster", flotillav1.FieldManagerHubClusters, st); err != nil {
			return ctrl.Result{}, err
		}
	}
	if old := apimeta.FindStatusCondition(mc.Status.Conditions, flotillav1.ConditionReady); r.Recorder != nil && (old == nil || old.Status != p.ready.Status) {
		kind := corev1.EventTypeNormal
		if !ok {
			kind = corev1.EventTypeWarning
		}
		r.Recorder.Eventf(mc, nil, kind, p.ready.Reason, "Probe", "%s", p.ready.Message)
	}
	if old := apimeta.FindStatusCondition(mc.Status.Conditions, flotillav1.ConditionCredentialsValid); r.Recorder != nil &&
		p.creds.Reason == flotillav1.ReasonTokenExpiringSoon && (old == nil || old.Reason != p.creds.Reason) {
		r.Recorder.Eventf(mc, nil, corev1.EventTypeWarning, p.creds.Reason, "Probe", "%s", p.creds.Message)
	}
	if ok {
		r.forget(mc.Name)
		return ctrl.Result{RequeueAfter: r.nextProbe(p)}, nil
	}
	return ctrl.Result{RequeueAfter: r.nextBackoff(mc.Name)}, nil
}

// nextProbe is when to probe a reachable cluster again: at the probe
// interval, or just after its agent's Lease would expire, so that an agent
// that died is noticed within its Lease duration, not a probe later.
func (r *Reconciler) nextProbe(p probe) time.Duration {
	next := r.ProbeInterval
	if p.agent.Status == metav1.ConditionTrue && !p.leaseExpires.IsZero() {
		next = min(next, time.Until(p.leaseExpires)+time.Second)
	}
	return max(next, time.Second)
}

// statusChanged reports whether a probe found something the status does
// not say yet. The heartbeat time alone is refreshed only every half grace
// period: a write per probe per cluster would load the hub apiserver (and
// every watcher of MemberClusters) with writes that tell nobody anything.
func (r *Reconciler) statusChanged(mc *flotillav1.MemberCluster, p probe) bool {
	st := mc.Status
	if (p.credsVersion != "" && st.CredentialsVersion != p.credsVersion) || (p.expires != nil && !p.expires.Equal(st.CredentialsExpireTime)) {
		return true
	}
	if st.ObservedGeneration != mc.Generation || (p.server != "" && st.Server != p.server) ||
		(p.version != "" && st.KubernetesVersion != p.version) || (p.agentVer != "" && st.AgentVersion != p.agentVer) {
		return true
	}
	for _, c := range []metav1.Condition{p.ready, p.creds, p.agent} {
		// The conditions' observedGeneration is written with the status's,
		// checked above.
		if !kube.HasCondition(st.Conditions, c) {
			return true
		}
	}
	if kube.SummaryChanged(st.Conditions, p.summary()) {
		return true
	}
	if p.heartbeat == nil {
		return false
	}
	return st.LastHeartbeatTime == nil || p.heartbeat.Sub(st.LastHeartbeatTime.Time) >= r.HeartbeatGrace/2
}

// summary is the kstatus flag beside Ready (which a probe sets from
// credentials and reachability): Stalled while the credentials are refused
// (a person must fix the Secret or re-register), Reconciling while the
// cluster cannot be reached; nothing when Ready.
func (p probe) summary() []metav1.Condition {
	if p.ready.Status == metav1.ConditionTrue {
		return nil
	}
	typ := flotillav1.ConditionReconciling
	if p.creds.Status == metav1.ConditionFalse {
		typ = flotillav1.ConditionStalled
	}
	return []metav1.Condition{{Type: typ, Status: metav1.ConditionTrue, Reason: p.ready.Reason, Message: p.ready.Message}}
}

func (r *Reconciler) probe(ctx context.Context, mc *flotillav1.MemberCluster) probe {
	p := probe{
		ready: metav1.Condition{Type: flotillav1.ConditionReady, Status: metav1.ConditionFalse},
		creds: metav1.Condition{Type: flotillav1.ConditionCredentialsValid, Status: metav1.ConditionFalse},
		agent: metav1.Condition{Type: flotillav1.ConditionAgentAvailable, Status: metav1.ConditionUnknown, Reason: flotillav1.ReasonClusterNotReady, Message: "the cluster is not reachable, so the agent's heartbeat cannot be read"},
	}
	fail := func(credsStatus metav1.ConditionStatus, reason, msg string) probe {
		p.creds.Status, p.creds.Reason, p.creds.Message = credsStatus, reason, msg
		p.ready.Reason, p.ready.Message = reason, msg
		return p
	}
	ref := mc.Spec.KubeconfigSecretRef
	key := ref.Key
	if key == "" {
		key = "value"
	}
	secret := &corev1.Secret{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: r.Namespace, Name: ref.Name}, secret); err != nil {
		if apierrors.IsNotFound(err) {
			return fail(metav1.ConditionFalse, flotillav1.ReasonSecretNotFound, fmt.Sprintf("Secret %s/%s does not exist: create it with the spoke's kubeconfig under key %q (flotilla cluster register does this)", r.Namespace, ref.Name, key))
		}
		return fail(metav1.ConditionUnknown, flotillav1.ReasonSecretUnreadable, fmt.Sprintf("read Secret %s/%s: %v", r.Namespace, ref.Name, err))
	}
	raw, found := secret.Data[key]
	if !found {
		return fail(metav1.ConditionFalse, flotillav1.ReasonSecretKeyMissing, fmt.Sprintf("Secret %s/%s has no key %q", r.Namespace, ref.Name, key))
	}
	pc, err := r.probeClient(mc.Name, secret, key, raw)
	if err != nil {
		reason := flotillav1.ReasonInvalidKubeconfig
		if errors.Is(err, kubeconfig.ErrExecNotAllowed) {
			reason = flotillav1.ReasonExecCredentialsRefused
		}
		return fail(metav1.ConditionFalse, reason, fmt.Sprintf("Secret %s/%s key %q: %v", r.Namespace, ref.Name, key, err))
	}
	cfg, cs := pc.cfg, pc.cs
	p.cfg, p.hash, p.server = cfg, pc.hash, cfg.Host
	ver, err := cs.Discovery().ServerVersionWithContext(ctx)
	if err != nil {
		switch {
		case apierrors.IsUnauthorized(err):
			return fail(metav1.ConditionFalse, flotillav1.ReasonUnauthorized, "the spoke rejected the kubeconfig's credentials (401): re-register the cluster to rotate its token")
		case isTLSError(err):
			return fail(metav1.ConditionFalse, flotillav1.ReasonTLSVerificationFailed, "the spoke's serving certificate does not match the kubeconfig's certificate-authority-data: "+firstLine(err))
		default:
			return fail(metav1.ConditionUnknown, flotillav1.ReasonUnreachable, fmt.Sprintf("cannot reach %s: %s", cfg.Host, firstLine(err)))
		}
	}
	p.version = ver.GitVersion
	p.creds.Status, p.creds.Reason, p.creds.Message = metav1.ConditionTrue, flotillav1.ReasonAuthenticated, "the spoke accepted the hub's credentials"
	p.credsVersion = secret.ResourceVersion
	r.checkExpiry(&p, secret)
	p.ready.Status, p.ready.Reason, p.ready.Message = metav1.ConditionTrue, flotillav1.ReasonReachable, fmt.Sprintf("Kubernetes %s at %s", ver.GitVersion, cfg.Host)

	lease, err := cs.CoordinationV1().Leases(mc.Spec.AgentNamespace).Get(ctx, flotillav1.AgentLeaseName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		p.agent.Status, p.agent.Reason = metav1.ConditionFalse, flotillav1.ReasonAgentNotFound
		p.agent.Message = fmt.Sprintf("no agent heartbeat (Lease %s/%s): install the agent (flotilla cluster register)", mc.Spec.AgentNamespace, flotillav1.AgentLeaseName)
	case apierrors.IsForbidden(err):
		p.agent.Status, p.agent.Reason = metav1.ConditionUnknown, flotillav1.ReasonLeaseForbidden
		p.agent.Message = fmt.Sprintf("the hub's identity may not read Leases in %s: grant it the flotilla hub Role there", mc.Spec.AgentNamespace)
	case err != nil:
		p.agent.Status, p.agent.Reason, p.agent.Message = metav1.ConditionUnknown, flotillav1.ReasonLeaseUnreadable, firstLine(err)
	default:
		r.readLease(&p, lease)
	}
	return p
}

func (r *Reconciler) readLease(p *probe, lease *coordinationv1.Lease) {
	p.agentVer = lease.Annotations[flotillav1.AnnotationAgentVersion]
	if lease.Spec.RenewTime == nil {
		p.agent.Status, p.agent.Reason, p.agent.Message = metav1.ConditionUnknown, flotillav1.ReasonNoHeartbeat, "the agent's Lease was never renewed"
		return
	}
	hb := metav1.NewTime(lease.Spec.RenewTime.Time)
	p.heartbeat = &hb
	// The agent says how long its Lease lasts; older agents did not: grace.
	grace := r.HeartbeatGrace
	if d := lease.Spec.LeaseDurationSeconds; d != nil && *d > 0 {
		grace = time.Duration(*d) * time.Second
	}
	p.leaseExpires = lease.Spec.RenewTime.Add(grace)
	if time.Since(lease.Spec.RenewTime.Time) > grace {
		// No age in the message: it would change (and be written) on
		// every probe.
		p.agent.Status, p.agent.Reason = metav1.ConditionUnknown, flotillav1.ReasonHeartbeatExpired
		p.agent.Message = fmt.Sprintf("last agent heartbeat at %s; its Lease (%s) expired: check the flotilla-agent pod",
			lease.Spec.RenewTime.UTC().Format(time.RFC3339), grace)
		return
	}
	p.agent.Status, p.agent.Reason, p.agent.Message = metav1.ConditionTrue, flotillav1.ReasonHeartbeat, fmt.Sprintf("agent %s renews its Lease (duration %s)", p.agentVer, grace)
}

// probeClient is a cluster's parsed kubeconfig and probe client, kept
// while its Secret does not change: parsing the kubeconfig and building a
// clientset on every probe of every cluster was a tenth of the hub's CPU.
type probeClient struct {
	source string // Secret UID, resourceVersion and key it was built from
	cfg    *rest.Config
	hash   string
	cs     kubernetes.Interface
}

func (r *Reconciler) probeClient(cluster string, secret *corev1.Secret, key string, raw []byte) (*probeClient, error) {
	source := string(secret.UID) + "/" + secret.ResourceVersion + "/" + key
	r.mu.Lock()
	pc, ok := r.clients[cluster]
	r.mu.Unlock()
	if ok && pc.source == source {
		return pc, nil
	}
	cfg, hash, err := kubeconfig.Parse(raw, r.AllowExec, r.Limits)
	if err != nil {
		return nil, err
	}
	probeCfg := rest.CopyConfig(cfg)
	probeCfg.Timeout = min(cfg.Timeout, 10*time.Second)
	cs, err := kubernetes.NewForConfig(probeCfg)
	if err != nil {
		return nil, fmt.Errorf("build a client from the kubeconfig: %w", err)
	}
	pc = &probeClient{source: source, cfg: cfg, hash: hash, cs: cs}
	r.mu.Lock()
	r.clients[cluster] = pc
	r.mu.Unlock()
	return pc, nil
}

// Tracked is how many clusters the prober keeps state for (tests).
func (r *Reconciler) Tracked() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.backoff) + len(r.clients)
}

func (r *Reconciler) nextBackoff(name string) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := r.backoff[name]
	if d == 0 {
		d = 5 * time.Second
	} else {
		d = min(2*d, r.MaxBackoff)
	}
	r.backoff[name] = d
	return d
}

func (r *Reconciler) forget(name string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.backoff, name)
}

// drop forgets everything kept for a cluster that left the fleet.
func (r *Reconciler) drop(name string) {
	r.forget(name)
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.clients, name)
}

func isTLSError(err error) bool {
	var verr *tls.CertificateVerificationError
	return errors.As(err, &verr) || strings.Contains(err.Error(), "x509:")
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	if len(s) > 300 {
		s = s[:300]
	}
	return s
}

// checkExpiry reads the token's expiry from the kubeconfig Secret and, when
// it is near, says so in CredentialsValid (still True: the token works).
func (r *Reconciler) checkExpiry(p *probe, secret *corev1.Secret) {
	raw := secret.Annotations[flotillav1.AnnotationTokenExpires]
	if raw == "" {
		return
	}
	t, err := time.Parse(time.RFC3339, raw)
	if err != nil {
		return
	}
	exp := metav1.NewTime(t)
	p.expires = &exp
	if time.Until(t) < r.ExpiryWarning {
		// An absolute time: a message that counted down would be a status write per probe.
		p.creds.Reason = flotillav1.ReasonTokenExpiringSoon
		p.creds.Message = fmt.Sprintf("the hub's token for this cluster expires at %s: re-run flotilla cluster register to rotate it", t.UTC().Format(time.RFC3339))
	}
}
