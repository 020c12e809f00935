package redeem

import (
	"context"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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

type outcome int

const (
	claimed outcome = iota
	alreadyRedeemed
	refused
)

// invitations serialises this replica's writes to each invitation, and remembers the
// version of it this replica wrote last: the next claim starts from there, which under a
// flood is fresher than the cache.
type invitations struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]*invitationEntry
}

type invitationEntry struct {
	sync.Mutex
	written *invitesv1alpha1.Invitation
}

// lock returns the invitation's entry, locked.
func (k *invitations) lock(key types.NamespacedName) *invitationEntry {
	k.mu.Lock()
	if k.entries == nil {
		k.entries = map[types.NamespacedName]*invitationEntry{}
	}
	e, ok := k.entries[key]
	if !ok {
		e = &invitationEntry{}
		k.entries[key] = e
	}
	k.mu.Unlock()
	e.Lock()
	return e
}

// claim takes one use of the invitation for the user. The first attempt writes on top of
// the version at hand (the one this replica wrote last, or the cache's): if that was stale
// the write's precondition fails, and every further attempt reads the latest version
// first. Deciding not to write (already redeemed, or refused) takes the latest version too.
func (s *Server) claim(ctx context.Context, known *invitesv1alpha1.Invitation, user string, now time.Time) (*invitesv1alpha1.Invitation, outcome, *Error, error) {
	key := client.ObjectKeyFromObject(known)
	entry := s.invitations.lock(key)
	defer entry.Unlock()
	start := known
	if entry.written != nil && entry.written.UID == known.UID {
		start = entry.written
	}
	for attempt := range claimAttempts {
		inv := start.DeepCopy()
		if attempt > 0 {
			if err := s.Live.Get(ctx, key, inv); err != nil {
				return nil, refused, nil, err
			}
		}
		latest := attempt > 0
		if inProgressOrRecent(inv, user) {
			if !latest {
				continue
			}
			if refusal, err := s.redeemAgain(ctx, inv, user); refusal != nil || err != nil {
				return inv, refused, refusal, err
			}
			return inv, alreadyRedeemed, nil, nil
		}
		if refusal := usable(inv, now); refusal != nil {
			if !latest {
				continue
			}
			return inv, refused, refusal, nil
		}
		inv.Status.Uses++
		inv.Status.UsesSummary = inv.SummarizeUses()
		inv.Status.PendingRedemptions = append(s.unsettled(ctx, inv),
			invitesv1alpha1.PendingRedemption{User: user, ClaimedAt: metav1.NewTime(now)})
		record := invitesv1alpha1.Redemption{User: user, RedeemedAt: metav1.NewTime(now)}
		if at := bindings.ExpiresAt(inv, now); at != nil {
			record.GrantsExpireAt = &metav1.Time{Time: *at}
		}
		inv.Status.Redemptions = append(inv.Status.Redemptions, record)
		if len(inv.Status.Redemptions) > maxRedemptions {
			inv.Status.Redemptions = inv.Status.Redemptions[len(inv.Status.Redemptions)-maxRedemptions:]
		}
		err := s.Live.Status().Update(ctx, inv)
		switch {
		case err == nil:
			entry.written = inv.DeepCopy()
			return inv, claimed, nil, nil
		case apierrors.IsConflict(err):
			continue
		case apierrors.IsInvalid(err):
			// The schema's own guard: uses may never exceed maxUses.
			return inv, refused, errExhausted, nil
		default:
			return nil, refused, nil, err
		}
	}
	return nil, refused, errUnavailable, nil
}

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
	entry := s.invitations.lock(key)
	defer entry.Unlock()
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
