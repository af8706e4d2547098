package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// ApplicationSource is where an Application's manifests come from.
type ApplicationSource struct {
	// RepoURL of the Git repository (https://, http://, ssh:// or scp-like
	// git@host:path); with chart, a Helm repository (https://, http://) or
	// an OCI registry and path (oci://registry.example.com/charts).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=2048
	RepoURL string `json:"repoURL"`

	// TargetRevision is a branch, tag or commit SHA (empty means HEAD); with
	// chart, the chart version or a semver range (empty means the latest),
	// resolved once per check and reported in status.sync.revision.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	TargetRevision string `json:"targetRevision,omitempty"`

	// PinnedCommit is set by the hub: the commit targetRevision resolved to
	// at its last check, shared by every Application of that repository and
	// revision. Agents fetch exactly this commit and never resolve the
	// branch themselves when it is set.
	// +optional
	// +kubebuilder:validation:Pattern=`^[0-9a-f]{40}$`
	PinnedCommit string `json:"pinnedCommit,omitempty"`

	// Path inside the repository: a directory with a kustomization, or a
	// directory of plain YAML manifests. Empty means the repository root.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Path string `json:"path,omitempty"`

	// Directory options for a plain-manifest directory.
	// +optional
	Directory *DirectorySource `json:"directory,omitempty"`

	// Kustomize options applied on top of the path's kustomization.
	// +optional
	Kustomize *KustomizeSource `json:"kustomize,omitempty"`

	// Chart names a Helm chart in the Helm repository or OCI registry at
	// repoURL. Empty for Git sources (a path holding a Chart.yaml is
	// rendered with Helm too).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([a-z0-9._-]*[a-z0-9])?$`
	Chart string `json:"chart,omitempty"`

	// Helm options for a chart (from Git, a Helm repository or OCI).
	// +optional
	Helm *HelmSource `json:"helm,omitempty"`
}

// HelmSource holds the options of a Helm chart render (as helm template).
type HelmSource struct {
	// ReleaseName is the release's name (default: the Application's name).
	// +optional
	// +kubebuilder:validation:MaxLength=53
	ReleaseName string `json:"releaseName,omitempty"`

	// ValueFiles are values files, merged in order, relative to the chart:
	// in a Git repository they may name any file of the repository (never
	// outside it: ../ past the root, absolute paths and symlinks out are
	// refused); in a chart archive, files of the chart.
	// +optional
	// +kubebuilder:validation:MaxItems=32
	ValueFiles []string `json:"valueFiles,omitempty"`

	// Values is a YAML document of values, merged over the value files.
	// +optional
	// +kubebuilder:validation:MaxLength=262144
	Values string `json:"values,omitempty"`

	// ValuesObject is values as an object, merged over values.
	// +optional
	// +kubebuilder:pruning:PreserveUnknownFields
	// +kubebuilder:validation:Schemaless
	// +kubebuilder:validation:Type=object
	ValuesObject *runtime.RawExtension `json:"valuesObject,omitempty"`

	// SkipCRDs leaves out the chart's crds/ directory.
	// +optional
	SkipCRDs bool `json:"skipCRDs,omitempty"`
}

// DirectorySource controls how a directory of plain manifests is read.
type DirectorySource struct {
	// Recurse into subdirectories.
	// +optional
	Recurse bool `json:"recurse,omitempty"`

	// Include is a glob of file names to read (default *.yaml, *.yml, *.json).
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Include string `json:"include,omitempty"`

	// Exclude is a glob of file names to skip.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Exclude string `json:"exclude,omitempty"`
}

// KustomizeSource holds kustomize options layered over the source.
type KustomizeSource struct {
	// NamePrefix is prepended to every resource name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	NamePrefix string `json:"namePrefix,omitempty"`

	// NameSuffix is appended to every resource name.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	NameSuffix string `json:"nameSuffix,omitempty"`

	// Namespace overrides the namespace of every namespaced resource.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`

	// CommonLabels are added to every resource and selector.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	CommonLabels map[string]string `json:"commonLabels,omitempty"`

	// CommonAnnotations are added to every resource.
	// +optional
	// +kubebuilder:validation:MaxProperties=64
	CommonAnnotations map[string]string `json:"commonAnnotations,omitempty"`

	// Images overrides, in kustomize's "name=newName:newTag" or
	// "name:newTag" or "name@digest" form.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=512
	Images []string `json:"images,omitempty"`

	// Patches are strategic-merge or JSON6902 patches, optionally targeted.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	Patches []KustomizePatch `json:"patches,omitempty"`
}

// KustomizePatch is one kustomize patch.
type KustomizePatch struct {
	// Patch is the patch document (YAML or JSON).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=65536
	Patch string `json:"patch"`

	// Target selects the resources the patch applies to.
	// +optional
	Target *KustomizeSelector `json:"target,omitempty"`
}

// KustomizeSelector selects resources for a patch.
type KustomizeSelector struct {
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Version string `json:"version,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	LabelSelector string `json:"labelSelector,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	AnnotationSelector string `json:"annotationSelector,omitempty"`
}

// ApplicationDestination is where an Application runs.
type ApplicationDestination struct {
	// Cluster is the name of the MemberCluster the Application runs on.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Cluster string `json:"cluster"`

	// Namespace is the default namespace for namespaced resources that name none.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// AutomatedSyncPolicy turns on continuous reconciliation.
type AutomatedSyncPolicy struct {
	// Prune deletes objects that this Application applied and that left Git.
	// +optional
	Prune bool `json:"prune,omitempty"`
	// SelfHeal re-applies objects whose live state drifted from Git.
	// +optional
	SelfHeal bool `json:"selfHeal,omitempty"`
}

// SyncPolicy controls when and how an Application syncs.
type SyncPolicy struct {
	// Automated sync. Without it the agent reports OutOfSync and applies
	// only when asked (flotilla refresh --sync: the flotilla.dev/sync
	// annotation).
	// +optional
	Automated *AutomatedSyncPolicy `json:"automated,omitempty"`

	// SyncOptions (Argo CD's names): CreateNamespace=true (create the
	// destination namespace), PruneLast=true (prune only once everything
	// else is applied and Healthy), PrunePropagationPolicy=foreground|
	// background|orphan (how pruned objects' dependents go; default
	// background), AdoptExisting=true (take over existing objects), and
	// ServerSideApply=true (always on: accepted for Argo CD users). Any
	// other value is rejected. Per object, the annotation
	// flotilla.dev/sync-options: Prune=false (never pruned) or Delete=false
	// (kept when the Application is deleted) is honoured.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:Enum=CreateNamespace=true;CreateNamespace=false;PruneLast=true;PruneLast=false;PrunePropagationPolicy=foreground;PrunePropagationPolicy=background;PrunePropagationPolicy=orphan;AdoptExisting=true;AdoptExisting=false;ServerSideApply=true
	SyncOptions []string `json:"syncOptions,omitempty"`

	// PreserveResourcesOnDeletion keeps the applied objects running when the
	// Application is deleted.
	// +optional
	PreserveResourcesOnDeletion bool `json:"preserveResourcesOnDeletion,omitempty"`
}

// ApplicationSpec is the desired state of an Application.
// +kubebuilder:validation:XValidation:rule="size(self.destination.cluster) > 0",message="destination.cluster is required: name the MemberCluster this Application runs on"
type ApplicationSpec struct {
	// Project names the Project (in the hub's namespace) that bounds what
	// this Application may deploy, from where, to where. Empty means
	// "default".
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Project string `json:"project,omitempty"`

	// Source is the Git location of the manifests.
	// +required
	Source ApplicationSource `json:"source"`

	// Destination is the cluster and default namespace.
	// +required
	Destination ApplicationDestination `json:"destination"`

	// SyncPolicy controls automated sync, prune and self-heal.
	// +optional
	SyncPolicy *SyncPolicy `json:"syncPolicy,omitempty"`

	// IgnoreDifferences names fields another writer owns (an HPA's
	// spec.replicas, a webhook's injected field): the agent neither reports
	// them as drift nor changes them; it applies the live value instead
	// (Argo CD's ignoreDifferences with RespectIgnoreDifferences).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	IgnoreDifferences []ResourceIgnoreDifferences `json:"ignoreDifferences,omitempty"`
}

// ResourceIgnoreDifferences selects objects (by group and kind, and
// optionally name and namespace) and the fields of theirs to leave alone.
type ResourceIgnoreDifferences struct {
	// Group of the objects ("" or omitted: the core group; "apps" for
	// Deployments).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
	// Kind of the objects.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// Name of the object (omitted: every object of the kind).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name,omitempty"`
	// Namespace of the object (omitted: any).
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// JSONPointers (RFC 6901) of the fields to leave alone, e.g.
	// /spec/replicas.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=512
	JSONPointers []string `json:"jsonPointers,omitempty"`
	// ManagedFieldsManagers: every field these field managers own on the
	// live object is left alone, e.g. kube-controller-manager for an HPA.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=16
	// +kubebuilder:validation:items:MaxLength=128
	ManagedFieldsManagers []string `json:"managedFieldsManagers,omitempty"`
}

// SyncStatusCode says whether live state matches Git.
// +kubebuilder:validation:Enum=Synced;OutOfSync;Unknown
type SyncStatusCode string

// Sync status codes.
const (
	SyncStatusSynced    SyncStatusCode = "Synced"
	SyncStatusOutOfSync SyncStatusCode = "OutOfSync"
	SyncStatusUnknown   SyncStatusCode = "Unknown"
)

// HealthStatusCode is the health of a resource or Application.
// +kubebuilder:validation:Enum=Healthy;Progressing;Degraded;Suspended;Missing;Unknown
type HealthStatusCode string

// Health status codes.
const (
	HealthHealthy     HealthStatusCode = "Healthy"
	HealthProgressing HealthStatusCode = "Progressing"
	HealthDegraded    HealthStatusCode = "Degraded"
	HealthSuspended   HealthStatusCode = "Suspended"
	HealthMissing     HealthStatusCode = "Missing"
	HealthUnknown     HealthStatusCode = "Unknown"
)

// SyncStatus is the sync state of an Application.
type SyncStatus struct {
	// Status is Synced, OutOfSync or Unknown.
	// +optional
	Status SyncStatusCode `json:"status,omitempty"`
	// Revision is the commit SHA the Application was last rendered from.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Revision string `json:"revision,omitempty"`
	// CommitTime is the author time of Revision: the start of the
	// commit-to-Healthy lead time.
	// +optional
	CommitTime *metav1.Time `json:"commitTime,omitempty"`
}

// HealthStatus is the health of an Application.
type HealthStatus struct {
	// Status is Healthy, Progressing, Degraded, Suspended, Missing or Unknown.
	// +optional
	Status HealthStatusCode `json:"status,omitempty"`
	// Message names the resource that decided the health, and why.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ResourceStatus is the state of one object an Application applied.
type ResourceStatus struct {
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group,omitempty"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Version string `json:"version,omitempty"`
	// +required
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
	// +optional
	Health HealthStatusCode `json:"health,omitempty"`
	// +optional
	Sync SyncStatusCode `json:"sync,omitempty"`
	// Message from health assessment or from the API server's rejection.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Message string `json:"message,omitempty"`
}

// ApplicationStatus is the observed state of an Application.
type ApplicationStatus struct {
	// ObservedGeneration is the generation last processed successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Delivered (hub), Synced and Healthy (agent).
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Sync state and the revision last applied.
	// +optional
	Sync SyncStatus `json:"sync,omitempty"`

	// Health of the Application: the worst of its resources.
	// +optional
	Health HealthStatus `json:"health,omitempty"`

	// Resources the Application applied, worst first; at most 200 are listed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=200
	Resources []ResourceStatus `json:"resources,omitempty"`

	// ResourceCount is the number of resources applied, including those not listed.
	// +optional
	ResourceCount int32 `json:"resourceCount,omitempty"`

	// DriftCorrections counts self-heal re-applies since the Application was created.
	// +optional
	DriftCorrections int64 `json:"driftCorrections,omitempty"`

	// LastSyncTime is when the agent last applied the Application.
	// +optional
	LastSyncTime *metav1.Time `json:"lastSyncTime,omitempty"`

	// LastSyncError is the last fetch, render or apply error, empty on success.
	// +optional
	// +kubebuilder:validation:MaxLength=4096
	LastSyncError string `json:"lastSyncError,omitempty"`

	// LastHandledRefresh is the flotilla.dev/refresh value the agent last
	// handled (requestedAt / lastHandledAt).
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledRefresh string `json:"lastHandledRefresh,omitempty"`

	// LastHandledSync is the flotilla.dev/sync value the agent last handled.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	LastHandledSync string `json:"lastHandledSync,omitempty"`
}

// Application is one source deployed to one cluster. It lives on the hub
// (owned by its ApplicationSet) and, as delivered, on the spoke.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=fapp,categories=flotilla
// +kubebuilder:printcolumn:name="Cluster",type=string,JSONPath=`.spec.destination.cluster`
// +kubebuilder:printcolumn:name="Sync",type=string,JSONPath=`.status.sync.status`
// +kubebuilder:printcolumn:name="Health",type=string,JSONPath=`.status.health.status`
// +kubebuilder:printcolumn:name="Target",type=string,JSONPath=`.spec.source.targetRevision`,priority=1
// +kubebuilder:printcolumn:name="Pinned",type=string,JSONPath=`.spec.source.pinnedCommit`,priority=1
// +kubebuilder:printcolumn:name="Revision",type=string,JSONPath=`.status.sync.revision`
// +kubebuilder:printcolumn:name="Delivered",type=string,JSONPath=`.status.conditions[?(@.type=="Delivered")].status`,priority=1
// +kubebuilder:printcolumn:name="Message",type=string,JSONPath=`.status.health.message`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Application struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ApplicationSpec `json:"spec"`
	// +optional
	Status ApplicationStatus `json:"status,omitempty"`
}

// ApplicationList is a list of Applications.
//
// +kubebuilder:object:root=true
type ApplicationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Application `json:"items"`
}
