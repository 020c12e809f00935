package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=invitations,verbs=patch
// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=invitations/finalizers,verbs=update

// revokesGrants: spec.revokeGrants takes effect once the invitation is revoked, or deleted.
func revokesGrants(inv *invitesv1alpha1.Invitation) bool {
	return inv.Spec.RevokeGrants && (inv.Spec.Revoked || !inv.DeletionTimestamp.IsZero())
}

// keepFinalizer holds the invitation with a finalizer while spec.revokeGrants is set, so
// that deleting it (by hand or by a GitOps prune) also deletes the bindings it made. It
// says whether it changed anything; the change's own watch event continues the work.
func (r *InvitationReconciler) keepFinalizer(ctx context.Context, inv *invitesv1alpha1.Invitation) (bool, error) {
	has := controllerutil.ContainsFinalizer(inv, invitesv1alpha1.RevokeGrantsFinalizer)
	if has == inv.Spec.RevokeGrants {
		return false, nil
	}
	patch := client.MergeFromWithOptions(inv.DeepCopy(), client.MergeFromWithOptimisticLock{})
	if inv.Spec.RevokeGrants {
		controllerutil.AddFinalizer(inv, invitesv1alpha1.RevokeGrantsFinalizer)
	} else {
		controllerutil.RemoveFinalizer(inv, invitesv1alpha1.RevokeGrantsFinalizer)
	}
	err := r.Patch(ctx, inv, patch)
	if apierrors.IsConflict(err) {
		return true, nil
	}
	return true, err
}

// finishDeletion deletes the grants of an invitation that promised to take them along, then
// lets the invitation go. The token Secret is owned by the invitation and goes with it. A
// redemption that claimed its use a moment ago may still be making its bindings: the
// finalizer stays while such a claim is pending. The server that made a redemption's
// bindings clears its claim within a second (and that write wakes this controller), so the
// invitation goes at once unless a server died mid-redemption.
func (r *InvitationReconciler) finishDeletion(ctx context.Context, inv *invitesv1alpha1.Invitation) (ctrl.Result, error) {
	if !controllerutil.ContainsFinalizer(inv, invitesv1alpha1.RevokeGrantsFinalizer) {
		return ctrl.Result{}, nil
	}
	if revokesGrants(inv) {
		if err := r.revokeGrants(ctx, inv); err != nil {
			return ctrl.Result{}, err
		}
		if wait := r.youngestClaimDue(inv, r.Clock.Now()); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}
	patch := client.MergeFromWithOptions(inv.DeepCopy(), client.MergeFromWithOptimisticLock{})
	controllerutil.RemoveFinalizer(inv, invitesv1alpha1.RevokeGrantsFinalizer)
	return ctrl.Result{}, client.IgnoreNotFound(r.Patch(ctx, inv, patch))
}

// youngestClaimDue is how long until every pending claim is older than pendingGrace, or
// zero. Only claims a redemption server sealed count: an entry someone wrote into status
// must not hold a deletion up.
func (r *InvitationReconciler) youngestClaimDue(inv *invitesv1alpha1.Invitation, now time.Time) time.Duration {
	var wait time.Duration
	for _, p := range inv.Status.PendingRedemptions {
		if r.Sealer.ClaimSealed(inv, p) {
			wait = max(wait, p.ClaimedAt.Add(pendingGrace).Sub(now))
		}
	}
	return min(wait, settleAfter)
}

// revokeGrants deletes every binding the invitation made and says so in an Event.
// Bindings with an idpGroup wait for the identity provider hook (see IDPGroupReconciler),
// but lose their subjects at once.
func (r *InvitationReconciler) revokeGrants(ctx context.Context, inv *invitesv1alpha1.Invitation) error {
	removed, err := bindings.RemoveAll(ctx, r.Client, r.Live, r.Sealer, inv)
	if removed > 0 {
		r.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "GrantsRevoked", "RevokeGrants",
			"deleted %d binding(s) this invitation made (spec.revokeGrants)", removed)
	}
	return err
}

// invitationOfNewBinding wakes a revoked invitation with revokeGrants when a binding of
// its appears anyway: a redemption that claimed its use just before the revocation may
// bind a moment after the controller cleared the others.
func (r *InvitationReconciler) invitationOfNewBinding(ctx context.Context, binding client.Object) []reconcile.Request {
	owner, ok := bindings.OwnerOf(binding)
	if !ok || !bindings.Sealed(r.Sealer, binding) {
		return nil
	}
	inv := &invitesv1alpha1.Invitation{}
	if err := r.Get(ctx, owner.Invitation, inv); err != nil || inv.UID != owner.UID || !revokesGrants(inv) {
		return nil
	}
	return []reconcile.Request{{NamespacedName: owner.Invitation}}
}
