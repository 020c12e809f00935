package v1alpha1

// Labels, annotations and finalizers that rolecall reads or writes. All share the API group
// as their prefix so that they never collide with another tool's keys.
const (
	// TokenLabel marks a Secret that holds an invitation token. Its value is TokenLabelIssued
	// on the Secrets rolecall writes and TokenLabelCustom on the Secrets users supply for
	// Custom tokens. The manager caches only Secrets that carry this label.
	TokenLabel = "invites.rolecall.dev/token"
	// TokenLabelIssued is TokenLabel's value on a Secret that rolecall wrote.
	TokenLabelIssued = "issued"
	// TokenLabelCustom is TokenLabel's value on a user-supplied Secret holding a Custom token.
	TokenLabelCustom = "custom"

	// InvitationNameLabel names, on a token Secret, the Invitation it belongs to (a label
	// holds a name; bindings say namespace/name in InvitationAnnotation).
	InvitationNameLabel = "invites.rolecall.dev/invitation-name"

	// ResendAnnotation asks for a new token: whenever its value changes, the controller
	// rotates a Link or Code token (the old one stops working) and delivers it again.
	// Any value works; `kubectl invite resend` writes the current time.
	ResendAnnotation = "invites.rolecall.dev/resend"

	// RevokeGrantsFinalizer holds an Invitation with spec.revokeGrants until the bindings it
	// made are deleted, so deleting the Invitation also takes its grants away.
	RevokeGrantsFinalizer = "invites.rolecall.dev/revoke-grants"

	// TokenIDAnnotation on a token Secret records which token ID its token has: status is
	// written before the Secret, so a reader compares the two to know the Secret is current.
	TokenIDAnnotation = "invites.rolecall.dev/token-id"

	// TokenTypeAnnotation on a token Secret records which spec.tokenType produced it, so a
	// change of type issues a new token.
	TokenTypeAnnotation = "invites.rolecall.dev/token-type"

	// TokenSecretKey is the key of the token in a token Secret (issued or custom).
	TokenSecretKey = "token"
	// URLSecretKey is the key of the redemption URL in an issued token Secret.
	URLSecretKey = "url"

	// Labels, annotations and the finalizer on every binding rolecall makes.

	// InvitationUIDLabel is the UID of the invitation that made the binding.
	InvitationUIDLabel = "invites.rolecall.dev/invitation-uid"
	// UserLabel is a hash of the username (usernames do not fit label values).
	UserLabel = "invites.rolecall.dev/user"
	// UsernameAnnotation is the username itself, for people reading the binding.
	UsernameAnnotation = "invites.rolecall.dev/username"
	// InvitationAnnotation is "<namespace>/<name>" of the invitation that made the binding.
	InvitationAnnotation = "invites.rolecall.dev/invitation"
	// ExpiresAtAnnotation is when the grant ends (RFC 3339), for invitations with a
	// grantDuration; the grant expiry controller deletes the binding then.
	ExpiresAtAnnotation = "invites.rolecall.dev/expires-at"
	// ClaimedAtAnnotation is when the use this binding holds was claimed (RFC 3339). The
	// binding is made within moments of that, so a binding created much later is a copy
	// someone recreated, not the one a redemption made (see bindings.MadeByItsRedemption).
	ClaimedAtAnnotation = "invites.rolecall.dev/claimed-at"
	// IDPGroupAnnotation names the identity provider group the grant also adds the user to.
	IDPGroupAnnotation = "invites.rolecall.dev/idp-group"
	// IDPGroupAddedAnnotation records when the identity provider hook confirmed the
	// membership (RFC 3339), for people reading the binding; the "remove" is sent when the
	// binding goes whether or not it is there.
	IDPGroupAddedAnnotation = "invites.rolecall.dev/idp-group-added-at"
	// IDPGroupFinalizer holds a binding with an idpGroup until the hook has removed the
	// membership, so that ending a grant in Kubernetes also ends it in the identity provider.
	IDPGroupFinalizer = "invites.rolecall.dev/idp-group"
	// ManagedByLabel marks every binding rolecall makes; the manager caches only these.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	// ManagedByValue is ManagedByLabel's value.
	ManagedByValue = "rolecall"
	// SealAnnotation is rolecall's signature over what a binding grants, to whom, for which
	// invitation, until when and with which idpGroup. Labels and annotations can be written
	// by anyone who may create bindings; only a binding whose seal verifies is rolecall's,
	// and rolecall acts on no other (see bindings.Sealed).
	SealAnnotation = "invites.rolecall.dev/seal"
)
