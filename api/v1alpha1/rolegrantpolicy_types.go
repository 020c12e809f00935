package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SubjectKind is the kind of identity a policy names as an inviter.
// +kubebuilder:validation:Enum=User;Group;ServiceAccount
type SubjectKind string

const (
	// SubjectUser matches the inviter's username.
	SubjectUser SubjectKind = "User"
	// SubjectGroup matches one of the inviter's groups.
	SubjectGroup SubjectKind = "Group"
	// SubjectServiceAccount matches a service account inviter by namespace and name.
	SubjectServiceAccount SubjectKind = "ServiceAccount"
)

// Subject names who may invite, in the shape of an RBAC subject.
// +kubebuilder:validation:XValidation:rule="self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)",message="namespace is required for a ServiceAccount and not allowed for a User or Group"
// +kubebuilder:validation:XValidation:rule="self.kind != 'ServiceAccount' || self.name.matches('^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$')",message="a ServiceAccount's name is the name of the ServiceAccount object (such as onboarding, with its namespace in namespace), not a username such as system:serviceaccount:platform:onboarding"
type Subject struct {
	// kind is User, Group or ServiceAccount.
	// +required
	Kind SubjectKind `json:"kind"`

	// apiGroup is accepted for compatibility with rbac/v1 subjects and otherwise ignored.
	// +optional
	// +kubebuilder:validation:MaxLength=253
	APIGroup string `json:"apiGroup,omitempty"`

	// name is the username, group name or service account name (the ServiceAccount
	// object's name, not its system:serviceaccount: username).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Name string `json:"name"`

	// namespace is the service account's namespace; only for kind ServiceAccount.
	// +optional
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace,omitempty"`
}

// GrantableRole is a role a policy lets its inviters grant.
// +kubebuilder:validation:XValidation:rule="has(self.role) != has(self.clusterRole)",message="exactly one of role or clusterRole must be set"
type GrantableRole struct {
	// role is the name of a namespaced Role (in whichever selected namespace it is granted).
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..' && !self.contains('/') && !self.contains('%')",message="must be a role name RBAC can refer to: not '.' or '..', and without '/' or '%'"
	Role string `json:"role,omitempty"`

	// clusterRole is the name of a ClusterRole.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..' && !self.contains('/') && !self.contains('%')",message="must be a role name RBAC can refer to: not '.' or '..', and without '/' or '%'"
	ClusterRole string `json:"clusterRole,omitempty"`
}

// PolicyLimits bounds the invitations a policy allows. Unset limits do not restrict.
type PolicyLimits struct {
	// maxExpiresAfter caps spec.expiresAfter.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxExpiresAfter must be a positive duration such as 168h"
	MaxExpiresAfter *metav1.Duration `json:"maxExpiresAfter,omitempty"`

	// maxUses caps spec.maxUses.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxUses *int32 `json:"maxUses,omitempty"`

	// maxGrantDuration requires spec.grantDuration and caps it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxGrantDuration must be a positive duration such as 720h"
	MaxGrantDuration *metav1.Duration `json:"maxGrantDuration,omitempty"`

	// requireEmail allows only private invitations (spec.email set).
	// +optional
	RequireEmail bool `json:"requireEmail,omitempty"`

	// allowedEmailDomains restricts spec.email, when set, to these domains (case-insensitive).
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MaxLength=253
	// +kubebuilder:validation:items:Pattern=`^[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$`
	AllowedEmailDomains []string `json:"allowedEmailDomains,omitempty"`

	// maxActiveInvitationsPerInviter caps how many Pending or Active invitations one inviter may have.
	// +optional
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	MaxActiveInvitationsPerInviter *int32 `json:"maxActiveInvitationsPerInviter,omitempty"`

	// tokenTypes restricts spec.tokenType to these types.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=3
	TokenTypes []TokenType `json:"tokenTypes,omitempty"`

	// maxLifetime caps how long an invitation may stay open, counted from its creation:
	// no token, first or resent, stays valid past creationTimestamp plus maxLifetime.
	// Admission refuses an expiresAfter or a resend that would pass it.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxLifetime must be a positive duration such as 336h"
	MaxLifetime *metav1.Duration `json:"maxLifetime,omitempty"`
}

// PolicyRule is a CEL expression that must hold for an invitation to be allowed.
type PolicyRule struct {
	// expression is a CEL expression that returns a bool. It sees `inviter` (username, uid,
	// groups, extra), `invitation` (metadata and spec), `namespaceObject` (the
	// invitation's Namespace: metadata with name, labels and annotations) and `namespaces`
	// (the Namespace of every namespace a grant lands in, in the same shape).
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	Expression string `json:"expression"`

	// message is shown to the inviter when the expression is false.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Message string `json:"message"`
}

// RoleGrantPolicySpec says who may invite, where, to which roles, and within which limits.
// +kubebuilder:validation:XValidation:rule="!has(self.limits) || !has(self.limits.allowedEmailDomains) || (has(self.limits.requireEmail) && self.limits.requireEmail)",message="limits.allowedEmailDomains needs limits.requireEmail: without it an invitation could leave email empty and bypass the domain check"
type RoleGrantPolicySpec struct {
	// inviters are the users, groups and service accounts this policy applies to.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	Inviters []Subject `json:"inviters"`

	// namespaceSelector selects the namespaces where invitations may live and grant roles:
	// it must select the invitation's namespace and every namespace a grant lands in.
	// Unset (or empty) selects every namespace, kube-system included; admission warns.
	// +optional
	NamespaceSelector *metav1.LabelSelector `json:"namespaceSelector,omitempty"`

	// grantableRoles are the roles these inviters may grant.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	GrantableRoles []GrantableRole `json:"grantableRoles"`

	// allowClusterWide lets these inviters grant cluster roles cluster-wide (ClusterRoleBindings).
	// +optional
	AllowClusterWide bool `json:"allowClusterWide,omitempty"`

	// grantableIDPGroups are the identity provider groups these inviters may offer through a
	// grant's idpGroup. Unset allows none: a grant with an idpGroup is refused.
	// +optional
	// +listType=set
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=64
	// +kubebuilder:validation:items:MinLength=1
	// +kubebuilder:validation:items:MaxLength=253
	GrantableIDPGroups []string `json:"grantableIDPGroups,omitempty"`

	// allowReplace lets these inviters offer invitations with upgrade: Replace, which
	// removes the person's grants from other rolecall invitations in every namespace a
	// grant lands in (and their cluster-wide grants, for a cluster-wide grant). Without it
	// such an invitation is refused: it takes away what this policy never gave.
	// +optional
	AllowReplace bool `json:"allowReplace,omitempty"`

	// limits bounds the invitations this policy allows.
	// +optional
	Limits *PolicyLimits `json:"limits,omitempty"`

	// rules are CEL expressions that must all hold.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=32
	Rules []PolicyRule `json:"rules,omitempty"`
}

// RoleGrantPolicyStatus reports whether the policy can be used.
type RoleGrantPolicyStatus struct {
	// conditions has Ready: False with the reason when a rule cannot be compiled.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=8
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
}

// RoleGrantPolicy declares who may invite whom into which roles, where. Without a policy that
// allows it (or the inviter's own right to make the binding), nobody can invite anybody.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:scope=Cluster,shortName=rgp,categories=rolecall
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Cluster-Wide",type=boolean,JSONPath=`.spec.allowClusterWide`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RoleGrantPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is the policy.
	// +required
	Spec RoleGrantPolicySpec `json:"spec"`

	// status reports whether the policy can be used.
	// +optional
	Status RoleGrantPolicyStatus `json:"status,omitempty"`
}

// RoleGrantPolicyList is a list of RoleGrantPolicies.
//
// +kubebuilder:object:root=true
type RoleGrantPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RoleGrantPolicy `json:"items"`
}
