// Package v1alpha1 holds the flotilla.dev/v1alpha1 API: MemberCluster,
// ApplicationSet and Application. It imports apimachinery and nothing of ours.
//
// +kubebuilder:object:generate=true
// +groupName=flotilla.dev
package v1alpha1
