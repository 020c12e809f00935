package controllers

import (
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/metrics"
)

// updateStatus derives everything in status that follows from spec, the token and time.
// A token expires expiresAfter after it was issued, and never after lifetimeEnd (a policy's
// maxLifetime from the invitation's creation), however often it was re-issued.
func updateStatus(inv *invitesv1alpha1.Invitation, expiresAfter time.Duration, lifetimeEnd *time.Time, now time.Time) {
	if inv.Status.IssuedAt != nil {
		at := inv.Status.IssuedAt.Add(expiresAfter)
		if lifetimeEnd != nil && lifetimeEnd.Before(at) {
			at = lifetimeEnd.UTC().Truncate(time.Second)
		}
		expiresAt := metav1.NewTime(at)
		inv.Status.ExpiresAt = &expiresAt
	} else {
		inv.Status.ExpiresAt = nil
	}
	inv.Status.Phase = derivePhase(inv, now)
	setReady(inv)
	inv.Status.GrantSummary = grantSummary(inv.Spec.Grants)
	inv.Status.UsesSummary = inv.SummarizeUses()
	inv.Status.ObservedGeneration = inv.Generation
}

// derivePhase computes the phase from spec, status and time. Revoked and Declined (set by
// the redemption server when the invitee declines) are final; Denied lasts while policy
// does not allow the inviter to offer the invitation.
func derivePhase(inv *invitesv1alpha1.Invitation, now time.Time) invitesv1alpha1.InvitationPhase {
	switch {
	case inv.Spec.Revoked:
		return invitesv1alpha1.PhaseRevoked
	case inv.Status.Phase == invitesv1alpha1.PhaseDeclined:
		return inv.Status.Phase
	case policyDenied(inv):
		return invitesv1alpha1.PhaseDenied
	case inv.Status.TokenSecretRef == nil || inv.Status.ExpiresAt == nil:
		return invitesv1alpha1.PhasePending
	case inv.Status.Uses >= inv.Spec.MaxUses:
		return invitesv1alpha1.PhaseExhausted
	case !now.Before(inv.Status.ExpiresAt.Time):
		return invitesv1alpha1.PhaseExpired
	default:
		return invitesv1alpha1.PhaseActive
	}
}

// setReady explains the phase in the Ready condition, in words that say what to do next.
func setReady(inv *invitesv1alpha1.Invitation) {
	cond := metav1.Condition{Type: invitesv1alpha1.InvitationReadyCondition, Status: metav1.ConditionFalse, ObservedGeneration: inv.Generation}
	switch inv.Status.Phase {
	case invitesv1alpha1.PhaseActive:
		cond.Status, cond.Reason = metav1.ConditionTrue, invitesv1alpha1.InvitationActiveReason
		cond.Message = fmt.Sprintf("the invitation can be redeemed until %s", inv.Status.ExpiresAt.UTC().Format(time.RFC3339))
	case invitesv1alpha1.PhasePending:
		cond.Reason, cond.Message = invitesv1alpha1.InvitationTokenPendingReason, "no token has been issued yet"
		if issued := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition); issued != nil {
			cond.Reason, cond.Message = issued.Reason, issued.Message
		}
	case invitesv1alpha1.PhaseExhausted:
		cond.Reason = invitesv1alpha1.InvitationExhaustedReason
		cond.Message = fmt.Sprintf("all %d uses have been redeemed; raise spec.maxUses to allow more", inv.Spec.MaxUses)
	case invitesv1alpha1.PhaseExpired:
		cond.Reason = invitesv1alpha1.InvitationExpiredReason
		cond.Message = fmt.Sprintf("the token expired at %s; set the annotation %s to a new value to issue a fresh one",
			inv.Status.ExpiresAt.UTC().Format(time.RFC3339), invitesv1alpha1.ResendAnnotation)
	case invitesv1alpha1.PhaseRevoked:
		cond.Reason, cond.Message = invitesv1alpha1.InvitationRevokedReason, "spec.revoked is true: no further redemptions"
	case invitesv1alpha1.PhaseDeclined:
		cond.Reason, cond.Message = invitesv1alpha1.InvitationDeclinedReason, declinedMessage(inv)
	case invitesv1alpha1.PhaseDenied:
		allowed := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationPolicyAllowedCondition)
		cond.Reason, cond.Message = allowed.Reason, allowed.Message
	default:
		cond.Reason, cond.Message = string(inv.Status.Phase), "the invitation can no longer be redeemed"
	}
	meta.SetStatusCondition(&inv.Status.Conditions, cond)
}

// grantSummary lists grants briefly for kubectl get: "edit, view@prod, role/deployer, cluster-reader(cluster)".
func grantSummary(grants []invitesv1alpha1.Grant) string {
	parts := make([]string, 0, len(grants))
	for _, g := range grants {
		parts = append(parts, g.Summary())
	}
	return strings.Join(parts, ", ")
}

// recordTransition emits an Event when the phase changes in a way a person should see.
func (r *InvitationReconciler) recordTransition(before, after *invitesv1alpha1.Invitation) {
	if before.Status.Phase == after.Status.Phase || firstActive(before, after) {
		return
	}
	ready := meta.FindStatusCondition(after.Status.Conditions, invitesv1alpha1.InvitationReadyCondition)
	eventType := corev1.EventTypeNormal
	if after.Status.Phase == invitesv1alpha1.PhaseDenied {
		metrics.PolicyDenials.WithLabelValues("controller").Inc()
	}
	if after.Status.Phase == invitesv1alpha1.PhaseDenied || (after.Status.Phase == invitesv1alpha1.PhasePending && before.Status.Phase != "") {
		eventType = corev1.EventTypeWarning
	}
	r.Recorder.Eventf(after, nil, eventType, string(after.Status.Phase), "UpdatePhase", "%s", ready.Message)
}

// firstActive is a new invitation becoming redeemable: its Issued event already says so.
// Each Event is also held in the event broadcaster's memory for several minutes, so a
// redundant one per invitation costs real memory when thousands are created at once.
func firstActive(before, after *invitesv1alpha1.Invitation) bool {
	return after.Status.Phase == invitesv1alpha1.PhaseActive &&
		(before.Status.Phase == "" || before.Status.Phase == invitesv1alpha1.PhasePending)
}

func declinedMessage(inv *invitesv1alpha1.Invitation) string {
	if inv.Status.DeclinedAt == nil {
		return "the invited person declined: no further redemptions"
	}
	return fmt.Sprintf("declined by %s at %s: no further redemptions", inv.Status.DeclinedBy, inv.Status.DeclinedAt.UTC().Format(time.RFC3339))
}
