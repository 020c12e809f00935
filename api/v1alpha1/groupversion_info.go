// Package v1alpha1 contains the invites.rolecall.dev/v1alpha1 API: Invitation, which offers
// roles to a person through a secret token, and RoleGrantPolicy, which says who may offer what.
//
// +kubebuilder:object:generate=true
// +groupName=invites.rolecall.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the group and version of every kind in this package.
	GroupVersion = schema.GroupVersion{Group: "invites.rolecall.dev", Version: "v1alpha1"}

	// SchemeBuilder registers this package's kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds this package's kinds to a runtime.Scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
