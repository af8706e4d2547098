package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SecretKeyReference points at one key of a Secret in the hub's
// flotilla-system namespace.
type SecretKeyReference struct {
	// Name of the Secret in flotilla-system on the hub.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`

	// Key in the Secret's data holding a kubeconfig.
	// +optional
	// +kubebuilder:default=value
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[-._a-zA-Z0-9]+$`
	Key string `json:"key,omitempty"`
}

// MemberClusterSpec describes how the hub reaches a spoke.
type MemberClusterSpec struct {
	// KubeconfigSecretRef names the Secret (in flotilla-system on the hub)
	// holding the kubeconfig the hub uses to reach the spoke. That identity
	// needs only a Role on Applications, Leases and Events in the spoke's
	// agentNamespace.
	// +required
	KubeconfigSecretRef SecretKeyReference `json:"kubeconfigSecretRef"`

	// AgentNamespace is the spoke namespace where the hub delivers
	// Applications and where the agent runs.
	// +optional
	// +kubebuilder:default=flotilla-system
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	AgentNamespace string `json:"agentNamespace,omitempty"`

	// Paused stops delivering to this cluster. Nothing already delivered is
	// removed.
	// +optional
	Paused bool `json:"paused,omitempty"`
}

// ApplicationCounts counts Applications by sync and health.
type ApplicationCounts struct {
	// Total number of Applications.
	// +optional
	Total int32 `json:"total"`
	// Synced Applications (sync status Synced).
	// +optional
	Synced int32 `json:"synced"`
	// OutOfSync Applications.
	// +optional
	OutOfSync int32 `json:"outOfSync,omitempty"`
	// Healthy Applications.
	// +optional
	Healthy int32 `json:"healthy"`
	// Progressing Applications.
	// +optional
	Progressing int32 `json:"progressing"`
	// Degraded Applications.
	// +optional
	Degraded int32 `json:"degraded"`
	// Suspended Applications.
	// +optional
	Suspended int32 `json:"suspended,omitempty"`
	// Missing Applications: delivered, but nothing of them runs yet.
	// +optional
	Missing int32 `json:"missing,omitempty"`
	// Unknown health (not yet reported, or the cluster is unreachable).
	// +optional
	Unknown int32 `json:"unknown"`
}

// MemberClusterStatus is what the hub observed of a spoke.
type MemberClusterStatus struct {
	// ObservedGeneration is the generation last processed successfully.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, CredentialsValid, AgentAvailable.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Server is the API server URL the hub reaches the spoke at.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	Server string `json:"server,omitempty"`

	// KubernetesVersion of the spoke's API server.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	KubernetesVersion string `json:"kubernetesVersion,omitempty"`

	// AgentVersion reported by the agent's Lease.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	AgentVersion string `json:"agentVersion,omitempty"`

	// LastHeartbeatTime is the renew time of the agent's Lease on the spoke.
	// +optional
	LastHeartbeatTime *metav1.Time `json:"lastHeartbeatTime,omitempty"`

	// CredentialsVersion is the resourceVersion of the kubeconfig Secret
	// the hub last reached the spoke with: after a rotation, the old token
	// may be revoked once this shows the new Secret.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	CredentialsVersion string `json:"credentialsVersion,omitempty"`

	// CredentialsExpireTime is when the hub's token for the spoke expires,
	// as the kubeconfig Secret's flotilla.dev/token-expires annotation says
	// (flotilla cluster register sets it).
	// +optional
	CredentialsExpireTime *metav1.Time `json:"credentialsExpireTime,omitempty"`

	// Applications counts the Applications delivered to this cluster.
	// +optional
	Applications ApplicationCounts `json:"applications,omitempty"`
}

// MemberCluster is a spoke cluster of the fleet. Its labels are what the
// clusters generator selects on.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=mcl,categories=flotilla
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Agent",type=string,JSONPath=`.status.conditions[?(@.type=="AgentAvailable")].status`
// +kubebuilder:printcolumn:name="Version",type=string,JSONPath=`.status.kubernetesVersion`
// +kubebuilder:printcolumn:name="Apps",type=integer,JSONPath=`.status.applications.total`
// +kubebuilder:printcolumn:name="Healthy",type=integer,JSONPath=`.status.applications.healthy`
// +kubebuilder:printcolumn:name="Paused",type=boolean,JSONPath=`.spec.paused`,priority=1
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type MemberCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec MemberClusterSpec `json:"spec"`
	// +optional
	Status MemberClusterStatus `json:"status,omitempty"`
}

// MemberClusterList is a list of MemberClusters.
//
// +kubebuilder:object:root=true
type MemberClusterList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []MemberCluster `json:"items"`
}
