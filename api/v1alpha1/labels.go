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

	// InvitationLabel names, on a token Secret, the Invitation it belongs to.
	InvitationLabel = "invites.rolecall.dev/invitation"

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

	// TokenSecretKey is the key of the token in a token Secret (issued or custom).
	TokenSecretKey = "token"
	// URLSecretKey is the key of the redemption URL in an issued token Secret.
	URLSecretKey = "url"
)
