package v1alpha1

// Well-known names shared by the hub, the agent and the CLI.
const (
	// SystemNamespace is where Flotilla runs on the hub and on every spoke.
	SystemNamespace = "flotilla-system"

	// FieldManagerHub is the server-side-apply field manager of the hub.
	FieldManagerHub = "flotilla-hub"
	// FieldManagerHubDelivery owns the hub Applications' Delivered condition and mirrored status.
	FieldManagerHubDelivery = "flotilla-hub-delivery"
	// FieldManagerHubClusters owns MemberCluster probe status (conditions, versions, heartbeat).
	FieldManagerHubClusters = "flotilla-hub-inventory"
	// FieldManagerHubStatus owns aggregated status: ApplicationSet summary and Healthy/Ready, MemberCluster applications.
	FieldManagerHubStatus = "flotilla-hub-status"
	// FieldManagerHubCAPI owns MemberClusters imported from Cluster API.
	FieldManagerHubCAPI = "flotilla-hub-capi"
	// FieldManagerAgent is the server-side-apply field manager of the agent
	// (applied objects, their inventory ConfigMaps, namespaces).
	FieldManagerAgent = "flotilla-agent"
	// FieldManagerAgentStatus owns the spoke Application's status.
	FieldManagerAgentStatus = "flotilla-agent-status"
	// FieldManagerCLI owns what `flotilla install` and `flotilla cluster register` apply.
	FieldManagerCLI = "flotilla-cli"

	// LabelApplicationSet names the ApplicationSet an Application came from.
	LabelApplicationSet = "flotilla.dev/application-set"
	// LabelCluster names the MemberCluster an Application is destined for.
	LabelCluster = "flotilla.dev/cluster"
	// LabelManagedBy marks objects Flotilla created.
	LabelManagedBy = "flotilla.dev/managed-by"
	// LabelApplication names the Application that applied a spoke object.
	LabelApplication = "flotilla.dev/application"
	// LabelCAPICluster names the Cluster API Cluster a MemberCluster was imported from.
	LabelCAPICluster = "flotilla.dev/capi-cluster"
	// LabelSecretType marks Secrets in the hub's system namespace; value
	// "repository" holds Git credentials (keys url, username, password|token, sshPrivateKey).
	LabelSecretType = "flotilla.dev/secret-type"
	// LabelHubToken marks the spoke Secrets that bind the hub's tokens.
	LabelHubToken = "flotilla.dev/hub-token"

	// AnnotationApplication carries the full spoke Application name on each
	// applied object (LabelApplication holds a label-safe form).
	AnnotationApplication = "flotilla.dev/application"
	// AnnotationAdopt ("true") on a live object on a spoke lets an
	// Application take it over; without it (or the Application's
	// AdoptExisting=true sync option) the agent refuses to apply over an
	// object it did not create.
	AnnotationAdopt = "flotilla.dev/adopt"
	// AnnotationCAPICluster records the namespace/name of the Cluster API
	// Cluster an imported MemberCluster came from.
	AnnotationCAPICluster = "flotilla.dev/capi-cluster"

	// AnnotationRefresh asks for an immediate re-check of the Git source
	// (re-read, re-render; an automated Application applies). Its value is
	// a token, e.g. the time of the request (Flux's requestedAt): the agent
	// handles each new value once and reports it in
	// status.lastHandledRefresh; it never deletes the annotation. On a hub
	// Application it reaches the spoke copy; on an ApplicationSet, every
	// Application of the set (and its git generators re-read at once).
	AnnotationRefresh = "flotilla.dev/refresh"
	// AnnotationSync asks for one sync (apply) of an Application without
	// automated sync, handled like AnnotationRefresh (status.lastHandledSync).
	AnnotationSync = "flotilla.dev/sync"
	// AnnotationSyncOptions on an applied object: "Prune=false" (never
	// pruned when it leaves Git) and/or "Delete=false" (kept when its
	// Application is deleted), comma-separated (Argo CD's names).
	AnnotationSyncOptions = "flotilla.dev/sync-options"
	// AnnotationAllowDeletes ("true") on an ApplicationSet confirms
	// deletions its MaxDeletePercent held back; the hub removes it once they
	// are done.
	AnnotationAllowDeletes = "flotilla.dev/allow-deletes"
	// AnnotationRolloutPaused ("true") on an ApplicationSet pauses its
	// rolling update: no step starts or ends and no Application moves to
	// another commit until it is removed (flotilla rollout pause|resume).
	AnnotationRolloutPaused = "flotilla.dev/rollout-paused"
	// AnnotationRolloutAction on an ApplicationSet asks its rolling update
	// for one action: "promote" (end the current step now, bake or not,
	// halted or not), "abort" (halt where it stands), "rollback" (every
	// Application back to the stable commit) or "rollback:<commit>" (to
	// that commit, which becomes stable), optionally followed by
	// "@<token>" so that two requests differ (the CLI adds one). The hub
	// removes it once handled.
	AnnotationRolloutAction = "flotilla.dev/rollout-action"
	// AnnotationProjectRules on a spoke Application carries its Project's
	// rules (JSON ProjectRules), set by the hub's delivery: the agent checks
	// them again and impersonates the Project's ServiceAccount.
	AnnotationProjectRules = "flotilla.dev/project-rules"
	// AnnotationTokenExpires (RFC 3339) on a kubeconfig Secret on the hub
	// says when the token in it expires.
	AnnotationTokenExpires = "flotilla.dev/token-expires"
	// AnnotationHubNamespace records the hub namespace of a spoke Application.
	AnnotationHubNamespace = "flotilla.dev/hub-namespace"
	// AnnotationHubName records the hub name of a spoke Application.
	AnnotationHubName = "flotilla.dev/hub-name"
	// AnnotationHubNamespaceOfHub on the memberclusters.flotilla.dev CRD
	// records the namespace the hub was installed into (flotilla install
	// -n): every CLI command finds the hub's namespace there.
	AnnotationHubNamespaceOfHub = "flotilla.dev/installed-namespace"
	// AnnotationHubGeneration records on a spoke Application the hub
	// Application's generation its spec carries: the hub calls a generation
	// observed only once the agent has processed the copy carrying it.
	AnnotationHubGeneration = "flotilla.dev/hub-generation"

	// FinalizerDelivery guards a hub Application until its spoke copy is gone.
	FinalizerDelivery = "flotilla.dev/delivery"
	// FinalizerResources guards a spoke Application until its objects are pruned.
	FinalizerResources = "flotilla.dev/resources"

	// IndexApplicationCluster is the hub's field index of Applications by
	// spec.destination.cluster.
	IndexApplicationCluster = "spec.destination.cluster"
)

// Condition types.
const (
	// MemberCluster conditions.
	ConditionReady            = "Ready"
	ConditionCredentialsValid = "CredentialsValid"
	ConditionAgentAvailable   = "AgentAvailable"

	// ApplicationSet conditions.
	ConditionParametersGenerated = "ParametersGenerated"
	ConditionResourcesUpToDate   = "ResourcesUpToDate"
	// ConditionHealthy is used by ApplicationSet and Application.
	ConditionHealthy = "Healthy"
	// ConditionRolledOut (ApplicationSet with a RollingUpdate strategy):
	// True when the target commit runs everywhere; otherwise its reason
	// is the rollout's phase.
	ConditionRolledOut = "RolledOut"

	// Application conditions.
	ConditionDelivered = "Delivered"
	ConditionSynced    = "Synced"
)

// Agent heartbeat.
const (
	// AgentLeaseName is the Lease the agent renews in its namespace.
	AgentLeaseName = "flotilla-agent"
	// AnnotationAgentVersion on the agent's Lease carries its version.
	AnnotationAgentVersion = "flotilla.dev/agent-version"
)

// Summary condition types, following kstatus (sigs.k8s.io/cli-utils): Ready
// summarises an object's other conditions; Reconciling (True while it works
// towards its spec) and Stalled (True when it cannot progress without a
// person) are present only while True.
const (
	ConditionReconciling = "Reconciling"
	ConditionStalled     = "Stalled"
)

// IsSpokeCopy reports whether an Application is a spoke copy delivered by
// a hub (it names its hub Application). On a hub registered as its own
// spoke (in-cluster), the hub's controllers leave copies alone: they are
// the agent's.
func IsSpokeCopy(a *Application) bool { return a.Annotations[AnnotationHubName] != "" }

// IsHubApplication reports whether an Application is a hub Application
// (delivery's finalizer guards it). An agent running on the hub's own
// cluster leaves those alone: it syncs only what was delivered to it.
func IsHubApplication(a *Application) bool {
	for _, f := range a.Finalizers {
		if f == FinalizerDelivery {
			return true
		}
	}
	return false
}
