package controllers

import (
	"context"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// checkPolicy records in PolicyAllowed whether the inviter may still offer the invitation.
// Admission checked it once; policies and RBAC change afterwards, and an invitation whose
// inviter lost the right must stop (phase Denied) until the right comes back. It returns
// the moment the allowing policy's limits.maxLifetime closes the invitation, if it sets one.
func (r *InvitationReconciler) checkPolicy(ctx context.Context, inv *invitesv1alpha1.Invitation) (*time.Time, error) {
	cond := metav1.Condition{
		Type: invitesv1alpha1.InvitationPolicyAllowedCondition, Status: metav1.ConditionFalse,
		ObservedGeneration: inv.Generation,
	}
	if inv.Spec.Inviter == nil {
		cond.Reason = invitesv1alpha1.InvitationNoInviterReason
		cond.Message = "no inviter is recorded: the invitation was created without rolecall's admission webhook; create it again with the webhook in place"
		meta.SetStatusCondition(&inv.Status.Conditions, cond)
		return nil, nil
	}
	decision, err := r.Authorizer.Authorize(ctx, inv, *inv.Spec.Inviter)
	if err != nil {
		return nil, err
	}
	cond.Reason, cond.Message = invitesv1alpha1.InvitationPolicyDeniedReason, decision.Message(*inv.Spec.Inviter)
	if decision.Allowed {
		cond.Status, cond.Reason = metav1.ConditionTrue, invitesv1alpha1.InvitationPolicyAllowedReason
	}
	meta.SetStatusCondition(&inv.Status.Conditions, cond)
	if end, capped := policy.LifetimeEnd(inv, decision); capped {
		return &end, nil
	}
	return nil, nil
}

func policyDenied(inv *invitesv1alpha1.Invitation) bool {
	return meta.IsStatusConditionFalse(inv.Status.Conditions, invitesv1alpha1.InvitationPolicyAllowedCondition)
}

// invitationsForPolicy wakes every invitation when any policy changes: which invitations a
// policy governs depends on their inviters' groups and namespaces, and a change is rare.
func (r *InvitationReconciler) invitationsForPolicy(ctx context.Context, _ client.Object) []reconcile.Request {
	var list invitesv1alpha1.InvitationList
	if err := r.List(ctx, &list); err != nil {
		logf.FromContext(ctx).Error(err, "listing invitations after a RoleGrantPolicy changed")
		return nil
	}
	requests := make([]reconcile.Request, 0, len(list.Items))
	for _, inv := range list.Items {
		requests = append(requests, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&inv)})
	}
	return requests
}
