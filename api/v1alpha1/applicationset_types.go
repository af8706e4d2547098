package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ListGenerator yields one parameter set per element.
type ListGenerator struct {
	// Elements are JSON objects; each object's keys become template parameters.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10000
	Elements []runtime.RawExtension `json:"elements"`
}

// ClustersGenerator yields one parameter set per selected MemberCluster:
// name, server, metadata.labels.<k>, metadata.annotations.<k>, values.<k>.
type ClustersGenerator struct {
	// Selector over MemberCluster labels. Empty selects every cluster.
	// +optional
	Selector metav1.LabelSelector `json:"selector,omitempty"`

	// Values are extra parameters, available as values.<key>. They may
	// themselves use the cluster's parameters as templates.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Values map[string]string `json:"values,omitempty"`
}

// GitDirectory is one directory glob of a git directories generator.
type GitDirectory struct {
	// Path is a glob (path.Match syntax plus **) relative to the repository root.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self != '..' && !self.startsWith('../') && !self.endsWith('/..') && !self.contains('/../')",message="path must stay inside the repository: '..' is not allowed"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path is relative to the repository root and must not start with '/'"
	Path string `json:"path"`

	// Exclude removes the directories this glob matches from the result.
	// +optional
	Exclude bool `json:"exclude,omitempty"`
}

// GitFile is one file glob of a git files generator.
type GitFile struct {
	// Path is a glob of JSON or YAML files relative to the repository root.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:XValidation:rule="self != '..' && !self.startsWith('../') && !self.endsWith('/..') && !self.contains('/../')",message="path must stay inside the repository: '..' is not allowed"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/')",message="path is relative to the repository root and must not start with '/'"
	Path string `json:"path"`
}

// GitGenerator yields parameter sets from a Git repository: one per matched
// directory (path.path, path.basename, path.basenameNormalized,
// path.segments) or one per matched file (its keys plus path.*).
// +kubebuilder:validation:XValidation:rule="has(self.directories) != has(self.files)",message="a git generator needs exactly one of directories or files"
type GitGenerator struct {
	// RepoURL of the repository.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	RepoURL string `json:"repoURL"`

	// Revision is a branch, tag or commit SHA. Empty means HEAD.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	Revision string `json:"revision,omitempty"`

	// Directories to match.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Directories []GitDirectory `json:"directories,omitempty"`

	// Files to match.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Files []GitFile `json:"files,omitempty"`

	// RequeueAfterSeconds is how often the hub re-reads the repository
	// (default 180).
	// +optional
	// +kubebuilder:validation:Minimum=10
	// +kubebuilder:validation:Maximum=86400
	RequeueAfterSeconds *int64 `json:"requeueAfterSeconds,omitempty"`
}

// TerminalGenerator is a generator that has no children: list, clusters or git.
// +kubebuilder:validation:XValidation:rule="[has(self.list), has(self.clusters), has(self.git)].filter(x, x).size() == 1",message="each generator entry needs exactly one of list, clusters or git"
type TerminalGenerator struct {
	// +optional
	List *ListGenerator `json:"list,omitempty"`
	// +optional
	Clusters *ClustersGenerator `json:"clusters,omitempty"`
	// +optional
	Git *GitGenerator `json:"git,omitempty"`

	// Selector filters the parameter sets this generator yields, on their
	// flattened keys (for example path.basename, or metadata.labels.env).
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// NestedMatrixGenerator is a matrix inside a matrix or merge.
// +kubebuilder:validation:XValidation:rule="self.generators.size() >= 2",message="a matrix needs two or more generators"
type NestedMatrixGenerator struct {
	// Generators whose parameter sets are combined (cartesian product).
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	Generators []TerminalGenerator `json:"generators"`
	// AllowOverrides: as in MatrixGenerator.
	// +optional
	AllowOverrides bool `json:"allowOverrides,omitempty"`
}

// NestedMergeGenerator is a merge inside a matrix or merge.
// +kubebuilder:validation:XValidation:rule="self.generators.size() >= 2",message="a merge needs two or more generators"
type NestedMergeGenerator struct {
	// Generators to merge: the first is the base, later ones override the
	// base's sets that share the merge keys.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	Generators []TerminalGenerator `json:"generators"`

	// MergeKeys are the parameter names (flattened, e.g. name or values.env)
	// two sets must share to be merged.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	MergeKeys []string `json:"mergeKeys"`
}

// NestedGenerator is a child of a top-level matrix or merge.
// +kubebuilder:validation:XValidation:rule="[has(self.list), has(self.clusters), has(self.git), has(self.matrix), has(self.merge)].filter(x, x).size() == 1",message="each generator entry needs exactly one of list, clusters, git, matrix or merge"
type NestedGenerator struct {
	// +optional
	List *ListGenerator `json:"list,omitempty"`
	// +optional
	Clusters *ClustersGenerator `json:"clusters,omitempty"`
	// +optional
	Git *GitGenerator `json:"git,omitempty"`
	// +optional
	Matrix *NestedMatrixGenerator `json:"matrix,omitempty"`
	// +optional
	Merge *NestedMergeGenerator `json:"merge,omitempty"`

	// Selector filters the parameter sets this generator yields.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// MatrixGenerator combines its children's parameter sets (cartesian
// product). A later child may use an earlier child's parameters in its own
// fields, as in Argo CD.
// +kubebuilder:validation:XValidation:rule="self.generators.size() >= 2",message="a matrix needs two or more generators"
type MatrixGenerator struct {
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	Generators []NestedGenerator `json:"generators"`
	// AllowOverrides lets a later child replace a parameter an earlier child
	// set. Off, such a conflict is an error naming the key: a Git file, say,
	// cannot redirect a cluster generator's "name".
	// +optional
	AllowOverrides bool `json:"allowOverrides,omitempty"`
}

// MergeGenerator joins its children's parameter sets on MergeKeys.
// +kubebuilder:validation:XValidation:rule="self.generators.size() >= 2",message="a merge needs two or more generators"
type MergeGenerator struct {
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=3
	Generators []NestedGenerator `json:"generators"`

	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	// +kubebuilder:validation:items:MaxLength=253
	MergeKeys []string `json:"mergeKeys"`
}

// ApplicationSetGenerator is one top-level generator entry.
// +kubebuilder:validation:XValidation:rule="[has(self.list), has(self.clusters), has(self.git), has(self.matrix), has(self.merge)].filter(x, x).size() == 1",message="each generator entry needs exactly one of list, clusters, git, matrix or merge"
type ApplicationSetGenerator struct {
	// +optional
	List *ListGenerator `json:"list,omitempty"`
	// +optional
	Clusters *ClustersGenerator `json:"clusters,omitempty"`
	// +optional
	Git *GitGenerator `json:"git,omitempty"`
	// +optional
	Matrix *MatrixGenerator `json:"matrix,omitempty"`
	// +optional
	Merge *MergeGenerator `json:"merge,omitempty"`

	// Selector filters the parameter sets this generator yields.
	// +optional
	Selector *metav1.LabelSelector `json:"selector,omitempty"`
}

// ApplicationTemplateMeta is the templated metadata of a generated Application.
type ApplicationTemplateMeta struct {
	// Name of the generated Application (templated; must render to a DNS-1123 name).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	Name string `json:"name"`

	// Labels added to the generated Application (templated).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Labels map[string]string `json:"labels,omitempty"`

	// Annotations added to the generated Application (templated).
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	Annotations map[string]string `json:"annotations,omitempty"`
}

// ApplicationTemplate is the Go text/template every parameter set renders.
type ApplicationTemplate struct {
	// +required
	Metadata ApplicationTemplateMeta `json:"metadata"`
	// +required
	Spec ApplicationSpec `json:"spec"`
}

// ApplicationsSyncPolicy says which writes the ApplicationSet may make to
// its Applications.
// +kubebuilder:validation:Enum=create-only;create-update;create-delete;sync
type ApplicationsSyncPolicy string

// Applications sync policies.
const (
	// ApplicationsSyncCreateOnly creates, never updates nor deletes.
	ApplicationsSyncCreateOnly ApplicationsSyncPolicy = "create-only"
	// ApplicationsSyncCreateUpdate creates and updates, never deletes.
	ApplicationsSyncCreateUpdate ApplicationsSyncPolicy = "create-update"
	// ApplicationsSyncCreateDelete creates and deletes, never updates.
	ApplicationsSyncCreateDelete ApplicationsSyncPolicy = "create-delete"
	// ApplicationsSyncSync creates, updates and deletes.
	ApplicationsSyncSync ApplicationsSyncPolicy = "sync"
)

// ApplicationSetSyncPolicy controls the set's writes to its Applications.
type ApplicationSetSyncPolicy struct {
	// ApplicationsSync is one of create-only, create-update, create-delete
	// or sync (the default).
	// +optional
	// +kubebuilder:default=sync
	ApplicationsSync ApplicationsSyncPolicy `json:"applicationsSync,omitempty"`

	// PreserveResourcesOnDeletion keeps the workloads on the spokes when an
	// Application (or the whole set) is deleted.
	// +optional
	PreserveResourcesOnDeletion bool `json:"preserveResourcesOnDeletion,omitempty"`

	// MaxDeletePercent holds back an expansion that would delete more than
	// this share of the set's Applications (100, the default: holds one
	// that would delete all of them, as an emptied generator would). Held
	// deletions wait, with ResourcesUpToDate=False, until the set is
	// annotated flotilla.dev/allow-deletes=true.
	// +optional
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	MaxDeletePercent *int32 `json:"maxDeletePercent,omitempty"`
}

// ApplicationSetSpec is the desired state of an ApplicationSet.
type ApplicationSetSpec struct {
	// Generators produce the parameter sets; their results are concatenated.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=8
	Generators []ApplicationSetGenerator `json:"generators"`

	// Template is rendered once per parameter set (Go text/template,
	// missingkey=error, on every string).
	// +required
	Template ApplicationTemplate `json:"template"`

	// TemplatePatch is a YAML document, itself templated, merged over each
	// rendered Application. Use it for fields that are not strings.
	// +optional
	// +kubebuilder:validation:MaxLength=65536
	TemplatePatch string `json:"templatePatch,omitempty"`

	// SyncPolicy says which writes the set may make to its Applications.
	// +optional
	SyncPolicy *ApplicationSetSyncPolicy `json:"syncPolicy,omitempty"`

	// Strategy says how a new commit reaches the set's clusters. Without
	// one, every Application moves to the new commit at once.
	// +optional
	Strategy *ApplicationSetStrategy `json:"strategy,omitempty"`
}

// ApplicationSetStrategy is how a new commit rolls out (Argo CD's
// RollingSync shape, with bake time, deadlines and rollback).
// +kubebuilder:validation:XValidation:rule="self.type != 'RollingUpdate' || has(self.rollingUpdate)",message="type RollingUpdate needs rollingUpdate"
type ApplicationSetStrategy struct {
	// Type is AllAtOnce (the default) or RollingUpdate.
	// +optional
	// +kubebuilder:validation:Enum=AllAtOnce;RollingUpdate
	// +kubebuilder:default=AllAtOnce
	Type StrategyType `json:"type,omitempty"`

	// RollingUpdate moves the set's clusters to a new commit step by step.
	// +optional
	RollingUpdate *RollingUpdateStrategy `json:"rollingUpdate,omitempty"`
}

// StrategyType names a rollout strategy.
type StrategyType string

// Strategy types.
const (
	StrategyAllAtOnce     StrategyType = "AllAtOnce"
	StrategyRollingUpdate StrategyType = "RollingUpdate"
)

// RollingUpdateStrategy moves clusters to a new commit one step at a time:
// a step starts when the one before it has been Healthy at the new commit
// for its bake time.
type RollingUpdateStrategy struct {
	// Steps in order. An Application belongs to the first step whose
	// matchExpressions its cluster's labels satisfy; one no step selects
	// moves with the last step.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Steps []RolloutStep `json:"steps"`

	// AutoRollback: when a step fails (an Application of it Degraded at the
	// new commit, or not Healthy by its progressDeadline), every
	// Application at the new commit goes back to the stable commit (the
	// last one fully rolled out and Healthy). Off, the rollout halts and
	// nothing moves until a person acts (flotilla rollout).
	// +optional
	AutoRollback bool `json:"autoRollback,omitempty"`
}

// RolloutStep is one step of a rolling update.
type RolloutStep struct {
	// Name shown in status and by flotilla rollout status (default step-N).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name,omitempty"`

	// MatchExpressions select the step's clusters by their MemberCluster
	// labels (Argo CD's RollingSync: In, NotIn, Exists, DoesNotExist).
	// Empty selects every cluster no earlier step took.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	MatchExpressions []metav1.LabelSelectorRequirement `json:"matchExpressions,omitempty"`

	// MaxUpdate is how many of the step's Applications move at a time: a
	// count or a percent of the step ("25%", rounded up; at least one, and
	// a value that is neither counts as one). Default: all.
	// +optional
	// +kubebuilder:validation:XIntOrString
	MaxUpdate *intstr.IntOrString `json:"maxUpdate,omitempty"`

	// BakeTime is how long every Application of the step must stay Healthy
	// at the new commit before the next step starts (default 0).
	// +optional
	BakeTime *metav1.Duration `json:"bakeTime,omitempty"`

	// ProgressDeadline: the step fails when its Applications are not all
	// Healthy at the new commit this long after it started (default 10m).
	// +optional
	ProgressDeadline *metav1.Duration `json:"progressDeadline,omitempty"`
}

// RolloutPhase is where a rollout stands.
// +kubebuilder:validation:Enum=Progressing;Baking;Paused;Halted;RolledBack;Complete
type RolloutPhase string

// Rollout phases.
const (
	// RolloutProgressing: a step's Applications are moving to the target.
	RolloutProgressing RolloutPhase = "Progressing"
	// RolloutBaking: a step is Healthy at the target and waits its bake time.
	RolloutBaking RolloutPhase = "Baking"
	// RolloutPaused: a person paused it; nothing moves.
	RolloutPaused RolloutPhase = "Paused"
	// RolloutHalted: a step failed (or was aborted); nothing moves.
	RolloutHalted RolloutPhase = "Halted"
	// RolloutRolledBack: the target was rolled back to the stable commit.
	RolloutRolledBack RolloutPhase = "RolledBack"
	// RolloutComplete: every Application runs the target, which is now stable.
	RolloutComplete RolloutPhase = "Complete"
)

// RolloutStepStatus counts one step's Applications.
type RolloutStepStatus struct {
	// +required
	// +kubebuilder:validation:MaxLength=63
	Name string `json:"name"`
	// Applications of the step.
	// +optional
	Applications int32 `json:"applications"`
	// Updated: pinned to the target commit.
	// +optional
	Updated int32 `json:"updated"`
	// Healthy at the target commit (the agent reported so at the current spec).
	// +optional
	Healthy int32 `json:"healthy"`
	// Failed: Degraded at the target commit.
	// +optional
	Failed int32 `json:"failed"`
	// Unknown: the cluster or its agent cannot be seen; neither Healthy
	// nor blocking.
	// +optional
	Unknown int32 `json:"unknown"`
}

// RolloutStatus is the state of a set's rolling update.
type RolloutStatus struct {
	// Phase of the rollout.
	// +optional
	Phase RolloutPhase `json:"phase,omitempty"`
	// TargetCommit is the commit being rolled out.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TargetCommit string `json:"targetCommit,omitempty"`
	// StableCommit is the last commit fully rolled out and Healthy.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	StableCommit string `json:"stableCommit,omitempty"`
	// CurrentStep is the index (from 0) of the step in progress.
	// +optional
	CurrentStep int32 `json:"currentStep"`
	// StepStartTime: when the current step started (or was resumed).
	// +optional
	StepStartTime *metav1.Time `json:"stepStartTime,omitempty"`
	// BakeStartTime: when the current step became Healthy at the target.
	// +optional
	BakeStartTime *metav1.Time `json:"bakeStartTime,omitempty"`
	// PausedFrom is the phase a paused rollout returns to on resume.
	// +optional
	PausedFrom RolloutPhase `json:"pausedFrom,omitempty"`
	// FailureTime: when the step failed (rollback time counts from here).
	// +optional
	FailureTime *metav1.Time `json:"failureTime,omitempty"`
	// Steps counts each step's Applications.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=17
	Steps []RolloutStepStatus `json:"steps,omitempty"`
	// Message says what the rollout waits for, or why it stopped.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// RevisionCount counts the Applications at one revision.
type RevisionCount struct {
	// Revision is a commit SHA.
	// +required
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision"`
	// Applications at this revision.
	// +optional
	Applications int32 `json:"applications"`
	// Healthy Applications at this revision.
	// +optional
	Healthy int32 `json:"healthy"`
}

// NotHealthyApplication is one Application that is not Healthy.
type NotHealthyApplication struct {
	// +required
	// +kubebuilder:validation:MaxLength=253
	Cluster string `json:"cluster"`
	// +required
	// +kubebuilder:validation:MaxLength=253
	Application string `json:"application"`
	// +optional
	Health HealthStatusCode `json:"health,omitempty"`
	// +optional
	Sync SyncStatusCode `json:"sync,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ApplicationSetSummary counts a set's clusters and Applications.
type ApplicationSetSummary struct {
	// Clusters the set's Applications are destined for.
	// +optional
	Clusters int32 `json:"clusters"`
	// Applications generated.
	// +optional
	Applications int32 `json:"applications"`

	ApplicationCounts `json:",inline"`
}

// ApplicationSetStatus is the observed state of an ApplicationSet.
type ApplicationSetStatus struct {
	// ObservedGeneration is the generation last processed successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: ParametersGenerated, ResourcesUpToDate, Healthy.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Summary counts the set's clusters and Applications by sync and health.
	// +optional
	Summary ApplicationSetSummary `json:"summary,omitempty"`

	// Revisions counts Applications per revision, newest rollout first.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10
	Revisions []RevisionCount `json:"revisions,omitempty"`

	// NotHealthy lists up to 50 Applications that are not Healthy.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	NotHealthy []NotHealthyApplication `json:"notHealthy,omitempty"`

	// Rollout is the state of the rolling update (strategy RollingUpdate).
	// +optional
	Rollout *RolloutStatus `json:"rollout,omitempty"`
}

// ApplicationSet generates one Application per parameter set, typically one
// per cluster.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fappset,categories=flotilla
// +kubebuilder:printcolumn:name="Clusters",type=integer,JSONPath=`.status.summary.clusters`
// +kubebuilder:printcolumn:name="Apps",type=integer,JSONPath=`.status.summary.applications`
// +kubebuilder:printcolumn:name="Synced",type=integer,JSONPath=`.status.summary.synced`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.summary.healthy`
// +kubebuilder:printcolumn:name="Status",type=string,JSONPath=`.status.conditions[?(@.type=="Healthy")].reason`
// +kubebuilder:printcolumn:name="Rollout",type=string,JSONPath=`.status.rollout.phase`
// +kubebuilder:printcolumn:name="Step",type=integer,JSONPath=`.status.rollout.currentStep`,priority=1
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.status.rollout.targetCommit`,priority=1
// +kubebuilder:printcolumn:name="Stable",type=string,JSONPath=`.status.rollout.stableCommit`,priority=1
// +kubebuilder:printcolumn:name="Generated",type=string,JSONPath=`.status.conditions[?(@.type=="ParametersGenerated")].status`,priority=1
// +kubebuilder:printcolumn:name="Progressing",type=integer,JSONPath=`.status.summary.progressing`,priority=1
// +kubebuilder:printcolumn:name="Degraded",type=integer,JSONPath=`.status.summary.degraded`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type ApplicationSet struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ApplicationSetSpec `json:"spec"`
	// +optional
	Status ApplicationSetStatus `json:"status,omitempty"`
}

// ApplicationSetList is a list of ApplicationSets.
//
// +kubebuilder:object:root=true
type ApplicationSetList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ApplicationSet `json:"items"`
}
