package controllers

import (
	"context"
	"time"

	corev1 "k8s.io/api/core/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// pendingGrace is how long a claimed use may wait for its bindings before the controller
// assumes the redemption server died and gives the use back. A live server settles a
// claim in well under a second, and gives up binding long before this (see the redemption
// server's bindTimeout).
const pendingGrace = 30 * time.Second

// settleAfter is how long a finished redemption's pending entry may wait to be cleared
// when nothing else in status changes: during a flood the next claims clear it, and a
// write of the controller's would only collide with them.
const settleAfter = 2 * time.Second

// settlePending clears the pending entries of redemptions whose bindings exist (the
// redemption server answers as soon as they do, and leaves this write to the controller),
// and gives back the uses of claims a crash left without bindings: the person redeems
// again, with a new claim checked like any other. The controller never binds for a claim,
// so an entry written into status by anyone can grant nothing; an entry the redemption
// server did not seal is not even counted as a claim. It returns how long until the next
// entry is due, or zero. With all, finished entries go however young they are (the caller
// writes status anyway).
func (r *InvitationReconciler) settlePending(ctx context.Context, inv *invitesv1alpha1.Invitation, now time.Time, all bool) (time.Duration, error) {
	var next time.Duration
	wake := func(after time.Duration) {
		if next == 0 || after < next {
			next = after
		}
	}
	var kept, stranded []invitesv1alpha1.PendingRedemption
	for _, p := range inv.Status.PendingRedemptions {
		if !r.Sealer.ClaimSealed(inv, p) {
			r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, "UnsealedClaim", "SettleClaims",
				"ignored a pending redemption for %s that rolecall did not record (status was edited)", p.User)
			continue
		}
		held, err := bindings.Holds(ctx, r.Client, r.Sealer, inv, p.User)
		if err != nil {
			return 0, err
		}
		young := p.ClaimedAt.Add(settleAfter).Sub(now)
		switch due := p.ClaimedAt.Add(pendingGrace).Sub(now); {
		case held && (all || young <= 0):
		case held:
			kept = append(kept, p)
			wake(young)
		case due > 0:
			// Bindings appear without waking this controller: look again soon, and give
			// the use back once the grace period is over.
			kept = append(kept, p)
			wake(min(due, settleAfter))
		default:
			stranded = append(stranded, p)
		}
	}
	inv.Status.PendingRedemptions = append(kept, stranded...)
	for _, p := range stranded {
		if err := r.giveBackStranded(ctx, inv, p.User); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// giveBackStranded returns the use of a claim whose server died before it finished binding,
// and removes whatever bindings it made: nobody holds a grant without a counted use, and
// nobody's use is counted without a grant.
func (r *InvitationReconciler) giveBackStranded(ctx context.Context, inv *invitesv1alpha1.Invitation, user string) error {
	// The cache may lag behind bindings made a moment ago: ask the API server before
	// undoing anything.
	if held, err := bindings.Holds(ctx, r.Live, r.Sealer, inv, user); err != nil || held {
		if held {
			inv.Status.PendingRedemptions = withoutClaimOf(inv.Status.PendingRedemptions, user)
		}
		return err
	}
	if err := bindings.Remove(ctx, r.Live, r.Sealer, inv, user); err != nil {
		return err
	}
	inv.GiveBackUse(user)
	r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, "ClaimGivenBack", "SettleClaims",
		"gave back the use claimed by %s, whose redemption was interrupted before its grants were made; they may redeem again", user)
	return nil
}

func withoutClaimOf(pending []invitesv1alpha1.PendingRedemption, user string) []invitesv1alpha1.PendingRedemption {
	kept := pending[:0:0]
	for _, p := range pending {
		if p.User != user {
			kept = append(kept, p)
		}
	}
	return kept
}
