package redeem

import (
	"context"
	"slices"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// Uses are counted in the Invitation's status, written with its resourceVersion as a
// precondition: of two writers that read the same version, one fails and reads again, so
// no two redemptions can take the same use, on one replica or several. Within a replica a
// lock per invitation keeps the replicas' requests from fighting each other for nothing.
//
// A claim also records the user as pending. Once their bindings exist the entry is done,
// and the controller (or the next claim) removes it; if binding fails the use is given
// back. A process that dies in between leaves the pending entry without bindings, and the
// controller completes it after a grace period: a use is never held by nobody.

// maxRedemptions bounds status.redemptions; uses keeps the full count.
const maxRedemptions = 100

// claimAttempts bounds retries on conflicting writes; each retry reads the latest version.
const claimAttempts = 100

// commitTimeout bounds one group commit. It does not follow any one request's context:
// the claims of everyone in the group ride on it, and one client hanging up must not
// fail the others.
const commitTimeout = 20 * time.Second

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
		if held, err := bindings.Holds(ctx, s.Reader, inv, p.User); err != nil || !held {
			kept = append(kept, p)
		}
	}
	return kept
}

// inProgressOrRecent says the user has a claim pending or among the recent redemptions.
func inProgressOrRecent(inv *invitesv1alpha1.Invitation, user string) bool {
	return slices.ContainsFunc(inv.Status.PendingRedemptions, func(p invitesv1alpha1.PendingRedemption) bool { return p.User == user }) ||
		slices.ContainsFunc(inv.Status.Redemptions, func(r invitesv1alpha1.Redemption) bool { return r.User == user })
}

// redeemAgain decides whether a person the invitation already counted may have their
// bindings (re)made without a new use. A claim still pending (a retry after a failure or a
// crash) may finish unless the invitation was closed meanwhile; it may use the last place,
// which the claim itself took. A finished redemption whose bindings are gone was undone on
// purpose (by hand, grant expiry or revokeGrants): presenting the token again must not
// bring the grants back.
func (s *Server) redeemAgain(ctx context.Context, inv *invitesv1alpha1.Invitation, user string) (*Error, error) {
	if refusal := closed(inv); refusal != nil {
		return refusal, nil
	}
	if slices.ContainsFunc(inv.Status.PendingRedemptions, func(p invitesv1alpha1.PendingRedemption) bool { return p.User == user }) {
		return nil, nil
	}
	// The cache said the bindings are missing; it may only lag behind another replica.
	held, err := bindings.Holds(ctx, s.Live, inv, user)
	if err != nil || held {
		return nil, err
	}
	return errGrantsRemoved, nil
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
	return settleFrom(ctx, s.Live, key, claimed, user, true)
}

// Settle removes a user's pending claim from an invitation, and with giveBack also returns
// the use and forgets the redemption. The controller uses it for claims a crash left behind.
func Settle(ctx context.Context, c client.Client, key types.NamespacedName, user string, giveBack bool) error {
	return settleFrom(ctx, c, key, nil, user, giveBack)
}

func settleFrom(ctx context.Context, c client.Client, key types.NamespacedName, known *invitesv1alpha1.Invitation, user string, giveBack bool) error {
	for attempt := range claimAttempts {
		inv := &invitesv1alpha1.Invitation{}
		if known != nil && attempt == 0 {
			inv = known.DeepCopy()
		} else if err := c.Get(ctx, key, inv); err != nil {
			return client.IgnoreNotFound(err)
		}
		i := slices.IndexFunc(inv.Status.PendingRedemptions, func(p invitesv1alpha1.PendingRedemption) bool { return p.User == user })
		if i < 0 {
			return nil
		}
		inv.Status.PendingRedemptions = slices.Delete(inv.Status.PendingRedemptions, i, i+1)
		if giveBack {
			inv.Status.Uses--
			inv.Status.UsesSummary = inv.SummarizeUses()
			if j := slices.IndexFunc(inv.Status.Redemptions, func(r invitesv1alpha1.Redemption) bool { return r.User == user }); j >= 0 {
				inv.Status.Redemptions = slices.Delete(inv.Status.Redemptions, j, j+1)
			}
		}
		err := c.Status().Update(ctx, inv)
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errUnavailable
}
