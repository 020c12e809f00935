package redeem

import (
	"context"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// Uses are counted in the Invitation's status, written with its resourceVersion as a
// precondition: of two writers that read the same version, one fails and reads again, so
// no two redemptions can take the same use, on one replica or several. Within a replica a
// lock per invitation keeps the replicas' requests from fighting each other for nothing.
//
// A claim also records the user as pending, sealed with the manager's key. Once their
// bindings exist the entry is done, and the controller (or the next claim) removes it; if
// binding fails the use is given back. A process that dies in between leaves the pending
// entry without bindings: the controller gives that use back after a grace period, and the
// person redeems again with a new claim. Nothing but the request that claimed a use ever
// binds for it, so nothing written into status can make a grant.

// maxRedemptions bounds status.redemptions; uses keeps the full count.
const maxRedemptions = 100

// claimAttempts bounds retries on conflicting writes; each retry reads the latest version.
const claimAttempts = 100

// commitTimeout bounds one group commit. It does not follow any one request's context:
// the claims of everyone in the group ride on it, and one client hanging up must not
// fail the others.
const commitTimeout = 20 * time.Second

// bindTimeout bounds making the bindings of a claimed use. It is well inside the
// controller's grace for pending claims (30 s), so a use is never given back while the
// request that claimed it may still bind.
const bindTimeout = 15 * time.Second

type outcome int

const (
	claimed outcome = iota
	alreadyRedeemed
	refused
)

// unsettled drops the pending entries whose bindings exist: those redemptions finished.
// The cache answers; an entry it cannot confirm yet stays for the controller.
func (s *Server) unsettled(ctx context.Context, inv *invitesv1alpha1.Invitation) []invitesv1alpha1.PendingRedemption {
	kept := inv.Status.PendingRedemptions[:0:0]
	for _, p := range inv.Status.PendingRedemptions {
		if held, err := bindings.Holds(ctx, s.Reader, s.Sealer, inv, p.User); err != nil || !held {
			kept = append(kept, p)
		}
	}
	return kept
}

// inProgressOrRecent says the user has a claim pending or among the recent redemptions.
func (s *Server) inProgressOrRecent(inv *invitesv1alpha1.Invitation, user string) bool {
	return s.hasClaim(inv, user) ||
		slices.ContainsFunc(inv.Status.Redemptions, func(r invitesv1alpha1.Redemption) bool { return r.User == user })
}

// hasClaim says the user has a pending claim that a redemption server sealed: an entry
// anyone else wrote into status is no claim.
func (s *Server) hasClaim(inv *invitesv1alpha1.Invitation, user string) bool {
	return slices.ContainsFunc(inv.Status.PendingRedemptions, func(p invitesv1alpha1.PendingRedemption) bool {
		return p.User == user && s.Sealer.ClaimSealed(inv, p)
	})
}

// redeemAgain answers a person the invitation already counted, without a new use and
// without binding anything. Whoever holds the grants is told so. A claim of theirs still
// pending belongs to a request that is making the bindings now, or that died and whose use
// the controller gives back: either way they try again in a moment. A finished redemption
// whose bindings are gone was undone on purpose (by hand, grant expiry, revokeGrants or a
// later Replace): presenting the token again must not bring the grants back.
func (s *Server) redeemAgain(ctx context.Context, inv *invitesv1alpha1.Invitation, user string) error {
	if refusal := closed(inv); refusal != nil {
		return refusal
	}
	held, err := bindings.Holds(ctx, s.Live, s.Sealer, inv, user)
	if err != nil || held {
		return err
	}
	if s.hasClaim(inv, user) {
		return errInProgress
	}
	return errGrantsRemoved
}

// closed says why nobody may redeem the invitation any more, whatever their history.
func closed(inv *invitesv1alpha1.Invitation) *Error {
	switch {
	case inv.Spec.Revoked:
		return errRevoked
	case inv.Status.Phase == invitesv1alpha1.PhaseDeclined:
		return errDeclined
	case meta.IsStatusConditionFalse(inv.Status.Conditions, invitesv1alpha1.InvitationPolicyAllowedCondition):
		return errPolicyDenied
	}
	return nil
}

// usable says why the invitation cannot be redeemed now, or nil.
func usable(inv *invitesv1alpha1.Invitation, now time.Time) *Error {
	if refusal := closed(inv); refusal != nil {
		return refusal
	}
	switch {
	case inv.Status.TokenID == "" || inv.Status.ExpiresAt == nil:
		return errUnknownToken
	case !now.Before(inv.Status.ExpiresAt.Time):
		return errExpired
	case inv.Status.Uses >= inv.Spec.MaxUses:
		return errExhausted
	}
	return nil
}

// giveBack returns the use a failed redemption claimed, with its pending entry. It starts
// from the version its own claim wrote, which is usually still the latest.
func (s *Server) giveBack(ctx context.Context, claimed *invitesv1alpha1.Invitation, user string) error {
	key := client.ObjectKeyFromObject(claimed)
	entry, release := s.invitations.exclusive(key)
	defer release()
	entry.written = nil
	for attempt := range claimAttempts {
		inv := claimed.DeepCopy()
		if attempt > 0 {
			if err := s.Live.Get(ctx, key, inv); err != nil {
				return client.IgnoreNotFound(err)
			}
		}
		if !inv.GiveBackUse(user) {
			return nil
		}
		err := s.Live.Status().Update(ctx, inv)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errUnavailable
}
