package v1alpha1

// Condition reasons, one place for every writer (CamelCase, as
// metav1.Condition requires). Event reasons reuse them where they mean the
// same thing.
const (
	// Summary conditions (kstatus: Ready, Reconciling, Stalled).
	ReasonReady = "Ready"
	// ReasonNotReady: some condition the summary reads is not True yet.
	ReasonNotReady = "NotReady"
	// ReasonProgressing: the object is working towards its spec.
	ReasonProgressing = "Progressing"
	// ReasonFailed: a failure that needs a user to act.
	ReasonFailed = "Failed"

	// ApplicationSet (ParametersGenerated, ResourcesUpToDate, Healthy).
	ReasonGenerated        = "Generated"
	ReasonGenerationFailed = "GenerationFailed"
	// ReasonRevisionUnresolved: the hub could not resolve a targetRevision to a commit; Applications keep their pinned commit.
	ReasonRevisionUnresolved = "RevisionUnresolved"
	ReasonUpToDate           = "UpToDate"
	ReasonWriteFailed        = "WriteFailed"
	// ReasonDeletionsHeld: the expansion would delete more Applications
	// than the set allows without confirmation.
	ReasonDeletionsHeld = "DeletionsHeld"
	// ReasonUpdated is the Event when a set's Applications were written.
	ReasonUpdated        = "Updated"
	ReasonNoApplications = "NoApplications"
	ReasonHealthy        = "Healthy"
	ReasonDegraded       = "Degraded"
	ReasonPending        = "Pending"
	// Rollout Events (the RolledOut condition's reasons are the phases).
	ReasonRolloutStarted    = "RolloutStarted"
	ReasonRolloutStepPassed = "RolloutStepPassed"
	ReasonRolloutFailed     = "RolloutFailed"
	ReasonRolloutRolledBack = "RolloutRolledBack"
	ReasonRolloutComplete   = "RolloutComplete"
	// ReasonRolloutAction: a person's rollout command was handled (or refused).
	ReasonRolloutAction = "RolloutAction"

	// ReasonProjectViolation: an Application breaks its Project's rules
	// (hub: nothing of the set is written, or the Application is not
	// delivered; agent: the Application or an object is refused).
	ReasonProjectViolation = "ProjectViolation"
	// ReasonPolicyViolation: an object breaks the spoke's own policy (agent flags).
	ReasonPolicyViolation = "PolicyViolation"

	// Application on the hub (Delivered).
	ReasonDelivered          = "Delivered"
	ReasonClusterNotFound    = "ClusterNotFound"
	ReasonClusterPaused      = "ClusterPaused"
	ReasonClusterUnreachable = "ClusterUnreachable"
	ReasonSpokeUnreadable    = "SpokeUnreadable"
	ReasonDeliveryFailed     = "DeliveryFailed"
	ReasonDeletionFailed     = "DeletionFailed"
	// Health and Synced on the hub when nobody knows: the spoke cannot be
	// reached, its agent's heartbeat expired, or the agent has not yet
	// reported on the current spec.
	ReasonAgentUnavailable = "AgentUnavailable"
	ReasonAwaitingAgent    = "AwaitingAgent"

	// Application on the spoke (Synced; Healthy uses the health status).
	ReasonSynced       = "Synced"
	ReasonOutOfSync    = "OutOfSync"
	ReasonFetchFailed  = "FetchFailed"
	ReasonRenderFailed = "RenderFailed"
	ReasonEmptyRender  = "EmptyRender"
	ReasonApplyFailed  = "ApplyFailed"
	// ReasonHookFailed: a Helm hook (pre- or post-sync) failed or did not finish in time.
	ReasonHookFailed     = "HookFailed"
	ReasonDriftCorrected = "DriftCorrected"

	// MemberCluster (Ready, CredentialsValid, AgentAvailable).
	ReasonReachable     = "Reachable"
	ReasonUnreachable   = "Unreachable"
	ReasonAuthenticated = "Authenticated"
	// ReasonTokenExpiringSoon: the credentials work but expire soon.
	ReasonTokenExpiringSoon      = "TokenExpiringSoon"
	ReasonUnauthorized           = "Unauthorized"
	ReasonTLSVerificationFailed  = "TLSVerificationFailed"
	ReasonSecretNotFound         = "SecretNotFound"
	ReasonSecretUnreadable       = "SecretUnreadable"
	ReasonSecretKeyMissing       = "SecretKeyMissing"
	ReasonInvalidKubeconfig      = "InvalidKubeconfig"
	ReasonExecCredentialsRefused = "ExecCredentialsRefused"
	ReasonClusterNotReady        = "ClusterNotReady"
	ReasonHeartbeat              = "Heartbeat"
	ReasonHeartbeatExpired       = "HeartbeatExpired"
	ReasonNoHeartbeat            = "NoHeartbeat"
	ReasonAgentNotFound          = "AgentNotFound"
	ReasonLeaseForbidden         = "LeaseForbidden"
	ReasonLeaseUnreadable        = "LeaseUnreadable"
	// ReasonSpokeCacheNotSynced: the hub's watch of the spoke's
	// Applications never synced (RBAC, agent namespace).
	ReasonSpokeCacheNotSynced = "SpokeCacheNotSynced"
	// ReasonEnrollFailed: installing the agent on an imported Cluster API
	// cluster, or issuing the hub's token there, failed (Events).
	ReasonEnrollFailed = "EnrollFailed"

	// Cluster API import (Events).
	ReasonNameConflict = "NameConflict"
)
