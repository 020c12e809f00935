package v1alpha1

// Condition types on an Invitation.
const (
	// InvitationReadyCondition is True while the invitation can be redeemed; its reason says
	// why not otherwise (Expired, Exhausted, Revoked, WaitingForCustomToken...).
	InvitationReadyCondition = "Ready"
	// InvitationTokenIssuedCondition is True once a token is in the token Secret.
	InvitationTokenIssuedCondition = "TokenIssued"
	// InvitationDeliveredCondition is True once the current token was delivered.
	InvitationDeliveredCondition = "Delivered"
	// InvitationPolicyAllowedCondition is False when policy denies the invitation.
	InvitationPolicyAllowedCondition = "PolicyAllowed"
	// InvitationIDPGroupsCondition reports the latest call to the identity provider hook for
	// grants with an idpGroup: True when it succeeded, False while it fails.
	InvitationIDPGroupsCondition = "IDPGroupsSynced"
)

// Condition reasons on an Invitation.
const (
	// InvitationActiveReason: the token is issued and can be redeemed.
	InvitationActiveReason = "Active"
	// InvitationExpiredReason: the token's lifetime has passed.
	InvitationExpiredReason = "Expired"
	// InvitationExhaustedReason: every use has been redeemed.
	InvitationExhaustedReason = "Exhausted"
	// InvitationRevokedReason: spec.revoked is true.
	InvitationRevokedReason = "Revoked"
	// InvitationDeclinedReason: the invited person declined; the invitation is closed.
	InvitationDeclinedReason = "Declined"
	// InvitationTokenGeneratedReason: rolecall generated a Link or Code token.
	InvitationTokenGeneratedReason = "Generated"
	// InvitationTokenRotatedReason: a resend replaced the token.
	InvitationTokenRotatedReason = "Rotated"
	// InvitationCustomTokenReadReason: the Custom token was read from the user's Secret.
	InvitationCustomTokenReadReason = "CustomTokenRead"
	// InvitationCustomTokenMissingReason: the Custom token's Secret or key does not exist (yet).
	InvitationCustomTokenMissingReason = "CustomTokenMissing"
	// InvitationCustomTokenUnlabeledReason: the Custom token's Secret lacks the token label.
	InvitationCustomTokenUnlabeledReason = "CustomTokenUnlabeled"
	// InvitationStatusEditedReason: status's token record was changed by someone other than
	// rolecall; no token works until a resend.
	InvitationStatusEditedReason = "StatusEdited"
	// InvitationCustomTokenInUseReason: another invitation already holds the Custom token.
	InvitationCustomTokenInUseReason = "CustomTokenInUse"
	// InvitationCustomTokenWeakReason: the Custom token is too easy to guess.
	InvitationCustomTokenWeakReason = "CustomTokenWeak"
	// InvitationTokenPendingReason: no token has been issued yet.
	InvitationTokenPendingReason = "TokenPending"
	// InvitationPolicyAllowedReason: a RoleGrantPolicy or the inviter's RBAC rights allow it.
	InvitationPolicyAllowedReason = "Allowed"
	// InvitationPolicyDeniedReason: no policy allows the inviter to offer it any more.
	InvitationPolicyDeniedReason = "Denied"
	// InvitationDeliveredReason: the current token was sent (Delivered True).
	InvitationDeliveredReason = "Sent"
	// InvitationDeliveryRetryingReason: an attempt to deliver failed; another follows.
	InvitationDeliveryRetryingReason = "DeliveryRetrying"
	// InvitationDeliveryFailedReason: every attempt failed; a resend starts over.
	InvitationDeliveryFailedReason = "DeliveryFailed"
	// InvitationDeliveryNotConfiguredReason: the manager has no channel for the delivery asked for.
	InvitationDeliveryNotConfiguredReason = "DeliveryNotConfigured"
	// InvitationDeliveryThrottledReason: the delivery waits, because the invitation or its
	// recipient was sent as much as the delivery limits allow for now; the message says until when.
	InvitationDeliveryThrottledReason = "Throttled"
	// InvitationIDPGroupAddedReason: the hook added a user to a group.
	InvitationIDPGroupAddedReason = "Added"
	// InvitationIDPGroupRemovedReason: the hook removed a user from a group.
	InvitationIDPGroupRemovedReason = "Removed"
	// InvitationIDPHookFailedReason: the hook failed; it is retried with backoff.
	InvitationIDPHookFailedReason = "HookFailed"
	// InvitationIDPHookNotConfiguredReason: a grant has an idpGroup but the manager has no --idp-hook-url.
	InvitationIDPHookNotConfiguredReason = "HookNotConfigured"
	// InvitationNoInviterReason: the invitation has no recorded inviter, so nobody vouches for it.
	InvitationNoInviterReason = "NoInviter"
)

// Condition types and reasons on a RoleGrantPolicy.
const (
	// PolicyReadyCondition is True when every rule compiles and the selector parses.
	PolicyReadyCondition = "Ready"
	// PolicyCompiledReason: the policy can be used.
	PolicyCompiledReason = "Compiled"
	// PolicyInvalidRuleReason: a CEL rule does not compile or does not return a bool.
	PolicyInvalidRuleReason = "InvalidRule"
	// PolicyInvalidReason: the policy's inviters or limits contradict each other or the rest
	// of the policy, so it could never allow anything.
	PolicyInvalidReason = "Invalid"
	// PolicyInvalidSelectorReason: the namespace selector does not parse.
	PolicyInvalidSelectorReason = "InvalidSelector"

	// PolicySelectsAllNamespacesCondition is True when the policy has no namespace selector
	// (or an empty one), so that its inviters may grant in every namespace, kube-system
	// included: a warning, since a policy is rarely meant to reach that far.
	PolicySelectsAllNamespacesCondition = "SelectsAllNamespaces"
	// PolicyNoNamespaceSelectorReason: namespaceSelector is unset or empty.
	PolicyNoNamespaceSelectorReason = "NoNamespaceSelector"
	// PolicyNamespaceSelectorReason: namespaceSelector limits where the policy applies.
	PolicyNamespaceSelectorReason = "NamespaceSelector"
)
