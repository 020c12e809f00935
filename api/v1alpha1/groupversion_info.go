// Package v1alpha1 contains the invites.rolecall.dev/v1alpha1 API: Invitation, which offers
// roles to a person through a secret token, and RoleGrantPolicy, which says who may offer what.
//
// +kubebuilder:object:generate=true
// +groupName=invites.rolecall.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "invites.rolecall.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme. It comes from
	// apimachinery, not controller-runtime, so that importing the API stays cheap.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

func addKnownTypes(scheme *runtime.Scheme) error {
	scheme.AddKnownTypes(GroupVersion,
		&Invitation{}, &InvitationList{},
		&RoleGrantPolicy{}, &RoleGrantPolicyList{},
	)
	metav1.AddToGroupVersion(scheme, GroupVersion)
	return nil
}
