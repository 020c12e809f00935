package controllers

import (
	"time"

	corev1 "k8s.io/api/core/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// When does a token's life start? Only an authorized act may start a new one: creating the
// invitation, or changing its resend annotation (both pass admission, which authorizes the
// requester). Everything else that makes the controller issue a token (a token Secret
// deleted or edited, a new Custom token value, a new token type) keeps the life already
// running. The controller's memory of that life is status, which someone rolecall does not
// trust may write; so it is sealed (see seal.SealToken), and a status whose record does not
// verify starts no life at all: the invitation waits for a resend.

// statusEditedMessage tells people how to get a token again after status was tampered with.
const statusEditedMessage = "the token facts in status were changed by someone other than rolecall, so the token no longer works; " +
	"set the annotation " + invitesv1alpha1.ResendAnnotation + " to a new value to issue a new token"

// issueAt decides when a token issued in this pass counts as issued, or that none may be.
func (r *InvitationReconciler) issueAt(inv *invitesv1alpha1.Invitation, secret *corev1.Secret) (time.Time, bool) {
	resend := inv.Annotations[invitesv1alpha1.ResendAnnotation]
	switch own := r.Sealer.RecordSealedUnder(inv, resend); {
	case own && inv.Status.IssuedAt != nil:
		// The same life goes on: a lost or edited Secret, a new Custom value or token type.
		return inv.Status.IssuedAt.Time, true
	case own:
		// Sealed with no life left: status was tampered with, and no resend came since.
		return time.Time{}, false
	case resend != inv.Status.ObservedResend && r.Sealer.RecordSealedUnder(inv, inv.Status.ObservedResend):
		// A resend changed the annotation since rolecall last sealed status.
		return r.Clock.Now(), true
	case secret == nil && neverIssued(inv):
		return r.Clock.Now(), true
	}
	return time.Time{}, false
}

// neverIssued says status holds no trace of a token. A status wiped clean by someone who
// may write it looks the same, which is why a token Secret, which rolecall keeps while the
// invitation waits for a resend, also counts as a trace.
func neverIssued(inv *invitesv1alpha1.Invitation) bool {
	s := inv.Status
	return s.TokenID == "" && s.TokenHash == "" && s.TokenSeal == "" && s.IssuedAt == nil
}

// block records, sealed, that the invitation has no usable token until a resend: the token
// facts go, and the record is sealed under the resend annotation as it is now, so that only
// a change of it (through admission) starts a new life.
func block(inv *invitesv1alpha1.Invitation, plan *tokenPlan) {
	inv.Status.TokenID, inv.Status.TokenHash, inv.Status.TokenSecretRef, inv.Status.IssuedAt = "", "", nil, nil
	inv.Status.ObservedResend = inv.Annotations[invitesv1alpha1.ResendAnnotation]
	setTokenNotIssued(inv, invitesv1alpha1.InvitationStatusEditedReason, statusEditedMessage)
	plan.trusted = true
}
