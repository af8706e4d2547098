package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// GroupVersion is the API group and version of every Flotilla kind.
var GroupVersion = schema.GroupVersion{Group: "flotilla.dev", Version: "v1alpha1"}

var (
	// SchemeBuilder registers the Flotilla kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)
	// AddToScheme adds the Flotilla kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&MemberCluster{}, &MemberClusterList{},
		&ApplicationSet{}, &ApplicationSetList{},
		&Application{}, &ApplicationList{},
		&Project{}, &ProjectList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
