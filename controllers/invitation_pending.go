package controllers

import (
	"context"
	"time"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// pendingGrace is how long a claimed use may wait for its bindings before the controller
// assumes the redemption server died and finishes the job itself. A live server settles a
// claim in well under a second.
const pendingGrace = 30 * time.Second

// settleAfter is how long a finished redemption's pending entry may wait to be cleared
// when nothing else in status changes: during a flood the next claims clear it, and a
// write of the controller's would only collide with them.
const settleAfter = 2 * time.Second

// settlePending clears the pending entries of redemptions whose bindings exist (the
// redemption server answers as soon as they do, and leaves this write to the controller),
// and completes those a crash left between claiming a use and binding: the person was
// counted, so they get their grants. It returns how long until the next entry is due, or zero.
// With all, finished entries go however young they are (the caller writes status anyway).
func (r *InvitationReconciler) settlePending(ctx context.Context, inv *invitesv1alpha1.Invitation, now time.Time, all bool) (time.Duration, error) {
	var next time.Duration
	wake := func(after time.Duration) {
		if next == 0 || after < next {
			next = after
		}
	}
	kept := inv.Status.PendingRedemptions[:0:0]
	for _, p := range inv.Status.PendingRedemptions {
		held, err := bindings.Holds(ctx, r.Client, inv, p.User)
		if err != nil {
			return 0, err
		}
		young := p.ClaimedAt.Add(settleAfter).Sub(now)
		switch due := p.ClaimedAt.Add(pendingGrace).Sub(now); {
		case held && (all || young <= 0):
			continue
		case held:
			kept = append(kept, p)
			wake(young)
			continue
		case due > 0:
			// Bindings appear without waking this controller: look again soon, and
			// complete the redemption ourselves once the grace period is over.
			kept = append(kept, p)
			wake(min(due, settleAfter))
			continue
		}
		if revokesGrants(inv) || closedToRedemption(inv) {
			// The use stays counted, but a revoked, declined or no longer allowed
			// invitation grants nothing more, not even to a redemption it interrupted.
			continue
		}
		if _, err := bindings.Ensure(ctx, r.Live, inv, p.User, bindings.ExpiresAt(inv, p.ClaimedAt.Time)); err != nil {
			return 0, err
		}
		r.Recorder.Eventf(inv, nil, "Normal", "Redeemed", "CompleteRedemption",
			"completed the redemption by %s that was interrupted after its use was counted", p.User)
	}
	inv.Status.PendingRedemptions = kept
	return next, nil
}

// closedToRedemption: revoked, declined, or denied by policy. The redemption server refuses
// such an invitation to everyone, including a person retrying an interrupted redemption.
func closedToRedemption(inv *invitesv1alpha1.Invitation) bool {
	return inv.Spec.Revoked || inv.Status.Phase == invitesv1alpha1.PhaseDeclined || policyDenied(inv)
}
