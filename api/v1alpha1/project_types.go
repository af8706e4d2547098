package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// DefaultProject is the Project an Application without spec.project uses.
const DefaultProject = "default"

// ProjectDestination is where a Project's Applications may deploy: clusters
// by label, namespaces by glob.
type ProjectDestination struct {
	// ClusterSelector selects MemberClusters by label (empty: every cluster).
	// +optional
	ClusterSelector metav1.LabelSelector `json:"clusterSelector,omitempty"`
	// Namespaces are globs (path.Match: *, ?, [...]) of the namespaces an
	// Application's destination and its objects may use; "*" is any.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	Namespaces []string `json:"namespaces"`
}

// GroupKind names a kind; "*" in either field matches any.
type GroupKind struct {
	// Group ("" is the core group; "*" any).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	Group string `json:"group"`
	// Kind ("*" any).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	Kind string `json:"kind"`
}

// ProjectSpec bounds what a team's Applications may deploy.
type ProjectSpec struct {
	// Description for people.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	Description string `json:"description,omitempty"`

	// SourceNamespaces are globs of the hub namespaces whose
	// ApplicationSets and Applications may use this Project.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	SourceNamespaces []string `json:"sourceNamespaces"`

	// SourceRepos are globs of the repository URLs (and chart repository
	// URLs) Applications may deploy from; "*" is any.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=2048
	SourceRepos []string `json:"sourceRepos"`

	// Destinations an Application may deploy to: at least one must select
	// its cluster and allow its namespace.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	Destinations []ProjectDestination `json:"destinations"`

	// ClusterResources are the cluster-scoped kinds its Applications may
	// create (default: none; [{group: "*", kind: "*"}] allows all).
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	ClusterResources []GroupKind `json:"clusterResources,omitempty"`

	// DeniedNamespacedResources are namespaced kinds its Applications may
	// not create.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=64
	DeniedNamespacedResources []GroupKind `json:"deniedNamespacedResources,omitempty"`

	// ServiceAccount is the ServiceAccount, in the agent's namespace on each
	// spoke, that the agent impersonates to apply this Project's
	// Applications: the spoke's own RBAC on it bounds what they can create
	// (default: the agent's --default-service-account).
	// +optional
	// +kubebuilder:validation:MaxLength=253
	ServiceAccount string `json:"serviceAccount,omitempty"`
}

// Project bounds who may deploy what, from where, to where (Argo CD's
// AppProject). Projects live in the hub's namespace: only whoever may write
// there (the platform team) defines what tenants may do.
//
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=fproj,categories=flotilla
// +kubebuilder:printcolumn:name="Sources",type=string,JSONPath=`.spec.sourceRepos`
// +kubebuilder:printcolumn:name="Namespaces",type=string,JSONPath=`.spec.sourceNamespaces`
// +kubebuilder:printcolumn:name="ServiceAccount",type=string,JSONPath=`.spec.serviceAccount`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Project struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// +required
	Spec ProjectSpec `json:"spec"`
}

// ProjectList is a list of Projects.
//
// +kubebuilder:object:root=true
type ProjectList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Project `json:"items"`
}

// ProjectRules are a Project's rules as delivered with each spoke copy
// (annotation AnnotationProjectRules, JSON): the agent checks them again.
type ProjectRules struct {
	Name                      string      `json:"name"`
	SourceRepos               []string    `json:"sourceRepos"`
	Namespaces                []string    `json:"namespaces"`
	ClusterResources          []GroupKind `json:"clusterResources,omitempty"`
	DeniedNamespacedResources []GroupKind `json:"deniedNamespacedResources,omitempty"`
	ServiceAccount            string      `json:"serviceAccount,omitempty"`
}
