package v1alpha1

import (
	"slices"
	"strconv"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TokenType says what kind of secret an Invitation hands out.
// +kubebuilder:validation:Enum=Link;Code;Custom
type TokenType string

const (
	// TokenTypeLink is a URL-safe token "<tokenID>.<secret>" meant to be clicked.
	TokenTypeLink TokenType = "Link"
	// TokenTypeCode is a short code in groups of four, meant to be read out or typed.
	TokenTypeCode TokenType = "Code"
	// TokenTypeCustom is a token the user supplies in a Secret.
	TokenTypeCustom TokenType = "Custom"
)

// UpgradeMode says what happens to a user's earlier rolecall grants when they redeem again.
// +kubebuilder:validation:Enum=Add;Replace
type UpgradeMode string

const (
	// UpgradeAdd keeps earlier grants and adds this invitation's.
	UpgradeAdd UpgradeMode = "Add"
	// UpgradeReplace removes the user's earlier rolecall grants in the same scope first.
	UpgradeReplace UpgradeMode = "Replace"
)

// InvitationPhase summarises where an Invitation is in its life.
// +kubebuilder:validation:Enum=Pending;Active;Exhausted;Expired;Revoked;Declined;Denied
type InvitationPhase string

const (
	// PhasePending means no token has been issued yet (for example, a Custom token's Secret
	// does not exist yet); the Ready condition says what the invitation waits for.
	PhasePending InvitationPhase = "Pending"
	// PhaseActive means the token can be redeemed.
	PhaseActive InvitationPhase = "Active"
	// PhaseExhausted means every use has been redeemed.
	PhaseExhausted InvitationPhase = "Exhausted"
	// PhaseExpired means the token's lifetime has passed.
	PhaseExpired InvitationPhase = "Expired"
	// PhaseRevoked means spec.revoked is true.
	PhaseRevoked InvitationPhase = "Revoked"
	// PhaseDeclined means the invited person declined.
	PhaseDeclined InvitationPhase = "Declined"
	// PhaseDenied means policy no longer allows the inviter to grant what is offered.
	PhaseDenied InvitationPhase = "Denied"
)

// Grant is one role the invited person receives on redemption.
// +kubebuilder:validation:XValidation:rule="has(self.role) != has(self.clusterRole)",message="exactly one of role or clusterRole must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterWide) || !self.clusterWide || has(self.clusterRole)",message="clusterWide requires clusterRole: a namespaced Role cannot be bound cluster-wide"
// +kubebuilder:validation:XValidation:rule="!has(self.clusterWide) || !self.clusterWide || !has(self.__namespace__)",message="clusterWide and namespace are mutually exclusive: a ClusterRoleBinding has no namespace"
type Grant struct {
	// role is the name of a Role to bind with a RoleBinding, in namespace (or the
	// invitation's namespace). Exactly one of role and clusterRole is set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..' && !self.contains('/') && !self.contains('%')",message="must be a role name RBAC can refer to: not '.' or '..', and without '/' or '%'"
	Role string `json:"role,omitempty"`

	// clusterRole is the name of a ClusterRole to bind: with a RoleBinding in namespace (or
	// the invitation's namespace), or with a ClusterRoleBinding when clusterWide is true.
	// Exactly one of role and clusterRole is set.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:XValidation:rule="self != '.' && self != '..' && !self.contains('/') && !self.contains('%')",message="must be a role name RBAC can refer to: not '.' or '..', and without '/' or '%'"
	ClusterRole string `json:"clusterRole,omitempty"`

	// namespace is where the RoleBinding is made. It defaults to the invitation's own
	// namespace; another namespace must be allowed by a RoleGrantPolicy.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`
	Namespace string `json:"namespace,omitempty"`

	// clusterWide binds clusterRole with a ClusterRoleBinding, in every namespace.
	// Only valid with clusterRole, and only where a RoleGrantPolicy allows cluster-wide grants.
	// +optional
	ClusterWide bool `json:"clusterWide,omitempty"`

	// idpGroup is a group in the identity provider that the person is also added to, through
	// the manager's --idp-hook-url, when this grant is made (and removed with it). Only a
	// RoleGrantPolicy that lists it in grantableIDPGroups can allow it.
	// +optional
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	IDPGroup string `json:"idpGroup,omitempty"`
}

// SecretReference names a Secret in the invitation's namespace.
type SecretReference struct {
	// name is the Secret's name, a DNS subdomain.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern=`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`
	Name string `json:"name"`
}

// Delivery says how the token reaches the invited person. Each token is delivered once:
// re-applying the same Invitation never sends again; a resend (new token) does.
// +kubebuilder:validation:XValidation:rule="!has(self.email) || !self.email || !has(self.webhook) || !self.webhook",message="choose one delivery channel: email or webhook"
type Delivery struct {
	// email sends the link by SMTP to spec.email, when the manager has SMTP configured
	// (--smtp-host). It requires spec.email.
	// +optional
	Email bool `json:"email,omitempty"`

	// webhook posts the link, signed with HMAC-SHA256, to the manager's
	// --delivery-webhook-url: a chat or ticket system hands it to the person.
	// +optional
	Webhook bool `json:"webhook,omitempty"`
}

// Inviter is the identity that created the Invitation, as the API server authenticated it.
type Inviter struct {
	// username is the inviter's Kubernetes username.
	// +required
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=512
	Username string `json:"username"`

	// uid is the inviter's user UID, when the authenticator provides one.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	UID string `json:"uid,omitempty"`

	// groups are the inviter's groups at creation time.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=256
	// +kubebuilder:validation:items:MaxLength=512
	Groups []string `json:"groups,omitempty"`

	// extra holds the authenticator's extra attributes of the inviter.
	// +optional
	// +kubebuilder:validation:MaxProperties=32
	Extra map[string]ExtraValue `json:"extra,omitempty"`
}

// ExtraValue is one extra attribute of an authenticated user.
// +kubebuilder:validation:MaxItems=32
// +kubebuilder:validation:items:MaxLength=1024
type ExtraValue []string

// InvitationSpec is what is offered, to whom, and under which limits.
// +kubebuilder:validation:XValidation:rule="self.tokenType == 'Custom' ? has(self.customTokenSecretRef) : !has(self.customTokenSecretRef)",message="customTokenSecretRef is required with tokenType Custom and not allowed otherwise"
// +kubebuilder:validation:XValidation:rule="has(oldSelf.inviter) == has(self.inviter) && (!has(self.inviter) || self.inviter == oldSelf.inviter)",message="inviter is immutable: it records who created the invitation"
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.revoked) || !oldSelf.revoked || (has(self.revoked) && self.revoked)",message="revoked cannot be undone; create a new Invitation instead"
// +kubebuilder:validation:XValidation:rule="!has(self.delivery) || !has(self.delivery.email) || !self.delivery.email || has(self.email)",message="delivery.email needs spec.email: the address to send the link to"
type InvitationSpec struct {
	// email makes this a private invitation: only a person who signs in with this verified
	// email address (compared case-insensitively) can redeem it. It is a bare address
	// (alice@example.com, no display name or angle brackets) whose domain is a host name.
	// +optional
	// +kubebuilder:validation:MaxLength=254
	// +kubebuilder:validation:Pattern=`^[^@\s<>()\[\],;:\\"]{1,64}@[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?(\.[A-Za-z0-9]([-A-Za-z0-9]*[A-Za-z0-9])?)+$`
	Email string `json:"email,omitempty"`

	// grants are the roles bound to the person on redemption, all of them.
	// +required
	// +listType=atomic
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	Grants []Grant `json:"grants"`

	// maxUses is how many people may redeem this invitation. It may be raised, or lowered
	// but never below status.uses.
	// +optional
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000000
	MaxUses int32 `json:"maxUses,omitempty"`

	// expiresAfter is how long the token stays valid after it is issued (or re-issued by a
	// resend), as a Go duration such as "72h". It defaults to the manager's
	// --default-expires-after and may be capped by a RoleGrantPolicy.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="expiresAfter must be a positive duration such as 72h"
	ExpiresAfter *metav1.Duration `json:"expiresAfter,omitempty"`

	// tokenType is the kind of token: Link (a URL to click), Code (a short code to type) or
	// Custom (a token you supply in the Secret named by customTokenSecretRef).
	// +optional
	// +kubebuilder:default=Link
	TokenType TokenType `json:"tokenType,omitempty"`

	// customTokenSecretRef names a Secret in this namespace whose key "token" holds the token,
	// for tokenType Custom only. The Secret must carry the label
	// invites.rolecall.dev/token=custom; it may be created after the Invitation. Whoever
	// sets or changes it (or resends the invitation) must be allowed to get that Secret,
	// and it may not belong to another invitation.
	// +optional
	CustomTokenSecretRef *SecretReference `json:"customTokenSecretRef,omitempty"`

	// redirectURL is where the person is sent after redeeming. Only origins listed in the
	// manager's --allowed-redirect-origins are followed; others get the success page.
	// +optional
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="isURL(self) && url(self).getScheme() in ['https', 'http'] && url(self).getHost() != ''",message="redirectURL must be an absolute http or https URL"
	RedirectURL string `json:"redirectURL,omitempty"`

	// grantDuration makes each grant expire this long after its redemption. Unset means the
	// grants stay until the invitation is revoked with revokeGrants or removed by hand.
	// +optional
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:MaxLength=32
	// +kubebuilder:validation:Pattern=`^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$`
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="grantDuration must be a positive duration such as 720h"
	GrantDuration *metav1.Duration `json:"grantDuration,omitempty"`

	// upgrade says what happens to the person's earlier rolecall grants in the same scope:
	// Add keeps them, Replace removes them.
	// +optional
	// +kubebuilder:default=Add
	Upgrade UpgradeMode `json:"upgrade,omitempty"`

	// delivery says how the token is sent to the invited person.
	// +optional
	Delivery *Delivery `json:"delivery,omitempty"`

	// hideInviter keeps the inviter's name off the landing page. Mail and webhook deliveries
	// name the inviter all the same: a message must say who sent it.
	// +optional
	HideInviter bool `json:"hideInviter,omitempty"`

	// revoked stops all further redemptions. It cannot be undone.
	// +optional
	Revoked bool `json:"revoked,omitempty"`

	// revokeGrants, with revoked (or on deletion), also removes the bindings this invitation made.
	// +optional
	RevokeGrants bool `json:"revokeGrants,omitempty"`

	// inviter is who created the invitation. The admission webhook sets it from the request's
	// authenticated user; it cannot be supplied by a client or changed later.
	// +optional
	Inviter *Inviter `json:"inviter,omitempty"`
}

// Redemption records one person's use of an invitation.
type Redemption struct {
	// user is the Kubernetes username the grants were bound to.
	// +required
	// +kubebuilder:validation:MaxLength=512
	User string `json:"user"`

	// redeemedAt is when the person redeemed.
	// +required
	RedeemedAt metav1.Time `json:"redeemedAt"`

	// grantsExpireAt is when the grants made for this person expire, if spec.grantDuration is set.
	// +optional
	GrantsExpireAt *metav1.Time `json:"grantsExpireAt,omitempty"`
}

// PendingRedemption is a use claimed by a person whose bindings are not confirmed yet. It is
// cleared once the bindings exist; the controller gives back the use of one that a crash
// left behind, so a claimed use is never held by nobody. Only the request that claimed the
// use ever binds for it.
type PendingRedemption struct {
	// user is the Kubernetes username the use was claimed for.
	// +required
	// +kubebuilder:validation:MaxLength=512
	User string `json:"user"`

	// claimedAt is when the use was claimed.
	// +required
	ClaimedAt metav1.Time `json:"claimedAt"`

	// seal is the redemption server's signature over this claim. An entry without a valid
	// seal was not recorded by rolecall and is ignored.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	Seal string `json:"seal,omitempty"`
}

// ObjectReference names an object in the invitation's namespace.
type ObjectReference struct {
	// name is the object's name.
	// +required
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// InvitationStatus is what rolecall observed and did. No field holds or allows recovering the token.
type InvitationStatus struct {
	// phase summarises the invitation's state. It is derived from spec, uses and time.
	// +optional
	Phase InvitationPhase `json:"phase,omitempty"`

	// conditions are Ready, TokenIssued, Delivered and PolicyAllowed.
	// +optional
	// +listType=map
	// +listMapKey=type
	// +kubebuilder:validation:MaxItems=16
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// observedGeneration is the spec generation this status describes.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// tokenID is the public half of the token, for lookup and support. It does not allow
	// redeeming the invitation.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TokenID string `json:"tokenID,omitempty"`

	// tokenHash is a keyed hash of the current token, by which the redemption server finds
	// the invitation. Only the manager holds the key: the hash does not allow recovering or
	// testing a token.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TokenHash string `json:"tokenHash,omitempty"`

	// tokenSeal is the manager's signature over the current token's hash, tokenID, issuedAt,
	// expiresAt, this invitation and its resend annotation. A token whose seal does not
	// verify is not redeemable: editing status cannot make a token current or extend it.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	TokenSeal string `json:"tokenSeal,omitempty"`

	// tokenSecretRef names the Secret that holds the token (key "token") and its URL (key "url").
	// +optional
	TokenSecretRef *ObjectReference `json:"tokenSecretRef,omitempty"`

	// issuedAt is when the current token was issued.
	// +optional
	IssuedAt *metav1.Time `json:"issuedAt,omitempty"`

	// expiresAt is when the current token stops working: issuedAt plus spec.expiresAfter.
	// +optional
	ExpiresAt *metav1.Time `json:"expiresAt,omitempty"`

	// uses is how many people have redeemed the invitation. It never exceeds spec.maxUses.
	// +optional
	// +kubebuilder:validation:Minimum=0
	Uses int32 `json:"uses,omitempty"`

	// redemptions lists the most recent redemptions (at most 100); uses holds the full count.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=100
	Redemptions []Redemption `json:"redemptions,omitempty"`

	// pendingRedemptions are uses claimed whose bindings are being made.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=1000
	PendingRedemptions []PendingRedemption `json:"pendingRedemptions,omitempty"`

	// declinedBy is the username of the invited person who declined the invitation.
	// +optional
	// +kubebuilder:validation:MaxLength=512
	DeclinedBy string `json:"declinedBy,omitempty"`

	// declinedAt is when the invited person declined the invitation.
	// +optional
	DeclinedAt *metav1.Time `json:"declinedAt,omitempty"`

	// deliveredAt is when the current token was last delivered.
	// +optional
	DeliveredAt *metav1.Time `json:"deliveredAt,omitempty"`

	// deliveryAttempts counts the failed attempts to deliver the current token; it starts
	// over with each new token.
	// +optional
	// +kubebuilder:validation:Minimum=0
	DeliveryAttempts int32 `json:"deliveryAttempts,omitempty"`

	// recentDeliveries are when this invitation's links (any of its tokens) were delivered
	// in the last hour or so, oldest first: the delivery limits count them, per invitation
	// and per recipient, across restarts of the manager.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=20
	RecentDeliveries []metav1.Time `json:"recentDeliveries,omitempty"`

	// observedResend is the value of the invites.rolecall.dev/resend annotation that the
	// current token answers, so that each new value rotates the token exactly once.
	// +optional
	// +kubebuilder:validation:MaxLength=256
	ObservedResend string `json:"observedResend,omitempty"`

	// grantSummary lists the grants in short form, for kubectl get.
	// +optional
	// +kubebuilder:validation:MaxLength=1024
	GrantSummary string `json:"grantSummary,omitempty"`

	// usesSummary is "uses/maxUses", for kubectl get.
	// +optional
	// +kubebuilder:validation:MaxLength=32
	UsesSummary string `json:"usesSummary,omitempty"`
}

// Invitation offers roles to a person through a secret token: a link, a code or a token you
// supply. When the person signs in with the cluster's identity provider and accepts, the
// roles in spec.grants are bound to exactly the username the API server sees for them.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=inv,categories=rolecall
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Grants",type=string,JSONPath=`.status.grantSummary`
// +kubebuilder:printcolumn:name="Email",type=string,JSONPath=`.spec.email`
// +kubebuilder:printcolumn:name="Uses",type=string,JSONPath=`.status.usesSummary`
// +kubebuilder:printcolumn:name="Expires",type=string,JSONPath=`.status.expiresAt`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:selectablefield:JSONPath=`.spec.inviter.username`
// +kubebuilder:validation:XValidation:rule="!has(self.status) || !has(self.status.uses) || self.status.uses <= self.spec.maxUses",message="spec.maxUses may not be lower than status.uses",fieldPath=".spec.maxUses"
type Invitation struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec is what is offered.
	// +required
	Spec InvitationSpec `json:"spec"`

	// status is what rolecall observed.
	// +optional
	Status InvitationStatus `json:"status,omitempty"`
}

// InvitationList is a list of Invitations.
//
// +kubebuilder:object:root=true
type InvitationList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Invitation `json:"items"`
}

// GiveBackUse undoes the user's pending claim: the entry goes, the use is returned and the
// redemption forgotten. It says whether there was a claim to undo. The redemption server
// calls it when binding fails, the controller for a claim whose server died.
func (in *Invitation) GiveBackUse(user string) bool {
	i := slices.IndexFunc(in.Status.PendingRedemptions, func(p PendingRedemption) bool { return p.User == user })
	if i < 0 {
		return false
	}
	in.Status.PendingRedemptions = slices.Delete(in.Status.PendingRedemptions, i, i+1)
	in.Status.Uses = max(0, in.Status.Uses-1)
	in.Status.UsesSummary = in.SummarizeUses()
	if j := slices.IndexFunc(in.Status.Redemptions, func(r Redemption) bool { return r.User == user }); j >= 0 {
		in.Status.Redemptions = slices.Delete(in.Status.Redemptions, j, j+1)
	}
	return true
}

// SummarizeUses is status.usesSummary for the current counts. Whoever changes status.uses
// writes it too, so that no second write is needed to bring it up to date.
func (in *Invitation) SummarizeUses() string {
	return strconv.Itoa(int(in.Status.Uses)) + "/" + strconv.Itoa(int(in.Spec.MaxUses))
}
