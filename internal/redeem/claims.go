package redeem

import (
	"context"
	"slices"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// Group commit. Claims on one invitation are written one at a time by each replica (their
// writes would only conflict otherwise), and a write takes one round trip to the API
// server. People who arrive while a write is in flight join the next group, and that group
// is claimed with a single write: under a crowd redeeming one code, each write carries
// everyone who arrived during the previous one, instead of one person each.

// invitations holds, for each invitation with claims in flight on this replica, its commit
// lock and the group now forming. An entry goes when its last claim leaves, so nothing is
// kept for invitations nobody is redeeming.
type invitations struct {
	mu      sync.Mutex
	entries map[types.NamespacedName]*invitationEntry
}

type invitationEntry struct {
	// commit lets one write at a time through.
	commit sync.Mutex
	// written is the version this replica wrote last (guarded by commit): under a crowd it
	// is fresher than the cache, so the next group's write starts from it.
	written *invitesv1alpha1.Invitation
	// inFlight and forming are guarded by invitations.mu.
	inFlight int
	forming  *group
}

// group is the claims one write carries.
type group struct {
	users []string
	// tokens[i] is the keyed hash of the token users[i] presented: a claim is made only
	// while that token is still the invitation's current, sealed one.
	tokens  []string
	results []claimResult // results[i] answers users[i]
	done    chan struct{}
}

// claimResult is one person's answer from a group commit. err is a refusal (*Error) or a
// failure to reach the API server; outcome is refused whenever err is set.
type claimResult struct {
	inv     *invitesv1alpha1.Invitation
	outcome outcome
	err     error
}

// join adds the user to the invitation's forming group and says where their answer will
// be; the first to join leads the group.
func (k *invitations) join(key types.NamespacedName, user, tokenHash string) (*invitationEntry, *group, int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.enter(key)
	if e.forming == nil {
		e.forming = &group{done: make(chan struct{})}
	}
	e.forming.users = append(e.forming.users, user)
	e.forming.tokens = append(e.forming.tokens, tokenHash)
	return e, e.forming, len(e.forming.users) - 1
}

// seal closes the group to newcomers: they form the next one, which waits for this write.
func (k *invitations) seal(e *invitationEntry, g *group) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.forming == g {
		e.forming = nil
	}
}

// exclusive takes the invitation's commit lock for a write of another kind (giving a use
// back, declining), which must not interleave with claims.
func (k *invitations) exclusive(key types.NamespacedName) (*invitationEntry, func()) {
	k.mu.Lock()
	e := k.enter(key)
	k.mu.Unlock()
	e.commit.Lock()
	return e, func() {
		e.commit.Unlock()
		k.leave(key, e)
	}
}

func (k *invitations) enter(key types.NamespacedName) *invitationEntry {
	if k.entries == nil {
		k.entries = map[types.NamespacedName]*invitationEntry{}
	}
	e, ok := k.entries[key]
	if !ok {
		e = &invitationEntry{}
		k.entries[key] = e
	}
	e.inFlight++
	return e
}

func (k *invitations) leave(key types.NamespacedName, e *invitationEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.inFlight--; e.inFlight == 0 {
		delete(k.entries, key)
	}
}

// claim takes one use of the invitation for the user, in a group with whoever else is
// claiming it on this replica at the same moment.
func (s *Server) claim(ctx context.Context, known *invitesv1alpha1.Invitation, user string, now time.Time) (*invitesv1alpha1.Invitation, outcome, error) {
	key := client.ObjectKeyFromObject(known)
	e, g, place := s.invitations.join(key, user, known.Status.TokenHash)
	defer s.invitations.leave(key, e)
	if place == 0 {
		e.commit.Lock()
		s.invitations.seal(e, g)
		commitCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		s.commitGroup(commitCtx, e, known, g, now)
		cancel()
		e.commit.Unlock()
		close(g.done)
	} else {
		<-g.done
	}
	r := g.results[place]
	return r.inv, r.outcome, r.err
}

// commitGroup claims a use for each person in the group that may have one, in one write.
// The first attempt writes on top of the version at hand (the one this replica wrote last,
// or the cache's): if that was stale the write's precondition fails, and every further
// attempt reads the latest version first. Deciding not to give someone a use (already
// redeemed, or refused) is only ever done on the latest version.
func (s *Server) commitGroup(ctx context.Context, e *invitationEntry, known *invitesv1alpha1.Invitation, g *group, now time.Time) {
	start := known
	if e.written != nil && e.written.UID == known.UID {
		start = e.written
	}
	key := client.ObjectKeyFromObject(known)
	for attempt := range claimAttempts {
		inv := start.DeepCopy()
		latest := attempt > 0
		if latest {
			if err := s.Live.Get(ctx, key, inv); err != nil {
				g.fail(err)
				return
			}
		}
		results, claimedAny, decided := s.decide(ctx, inv, g, now, latest)
		if !decided {
			continue
		}
		if !claimedAny {
			g.results = results
			return
		}
		err := s.Live.Status().Update(ctx, inv)
		switch {
		case err == nil:
			e.written = inv.DeepCopy()
			g.results = results
			return
		case apierrors.IsConflict(err):
			continue
		case apierrors.IsInvalid(err):
			// The schema's own guard: uses may never exceed maxUses.
			g.refuseAll(inv, errExhausted)
			return
		default:
			g.fail(err)
			return
		}
	}
	g.refuseAll(nil, errUnavailable)
}

// decide works out, on inv, what each person gets, and records the new claims in inv's
// status. decided is false when a refusal would rest on a version that may be stale.
func (s *Server) decide(ctx context.Context, inv *invitesv1alpha1.Invitation, g *group, now time.Time, latest bool) ([]claimResult, bool, bool) {
	results := make([]claimResult, len(g.users))
	var claims []string
	// Status may have changed since the token was looked up: rotated, or edited by someone
	// who may write it. A claim is made only on a version whose token is the one presented
	// and whose seal verifies, never on facts rolecall did not seal.
	sealed := s.Sealer.TokenSealed(inv)
	for i, user := range g.users {
		if !sealed || inv.Status.TokenHash != g.tokens[i] {
			if !latest {
				return nil, false, false
			}
			results[i] = claimResult{inv: inv, outcome: refused, err: errUnknownToken}
			continue
		}
		if slices.Contains(claims, user) {
			// The same person twice in one group: the second request finds the use the
			// first one claims, whose bindings are not made yet, as it would one write later.
			results[i] = claimResult{inv: inv, outcome: refused, err: errInProgress}
			continue
		}
		if s.inProgressOrRecent(inv, user) {
			if !latest {
				return nil, false, false
			}
			results[i] = claimResult{inv: inv, outcome: alreadyRedeemed}
			if err := s.redeemAgain(ctx, inv, user); err != nil {
				results[i] = claimResult{inv: inv, outcome: refused, err: err}
			}
			continue
		}
		if refusal := usable(inv, now); refusal != nil {
			if !latest {
				return nil, false, false
			}
			results[i] = claimResult{inv: inv, outcome: refused, err: refusal}
			continue
		}
		s.claimUse(inv, user, now)
		claims = append(claims, user)
		results[i] = claimResult{inv: inv, outcome: claimed}
	}
	if len(claims) > 0 {
		s.pruneSettled(ctx, inv, claims)
	}
	return results, len(claims) > 0, true
}

// claimUse counts one use for the user and records them as pending, under this server's
// seal, and as redeemed.
func (s *Server) claimUse(inv *invitesv1alpha1.Invitation, user string, now time.Time) {
	inv.Status.Uses++
	inv.Status.UsesSummary = inv.SummarizeUses()
	pending := invitesv1alpha1.PendingRedemption{User: user, ClaimedAt: metav1.NewTime(now)}
	s.Sealer.SealClaim(inv, &pending)
	inv.Status.PendingRedemptions = append(inv.Status.PendingRedemptions, pending)
	record := invitesv1alpha1.Redemption{User: user, RedeemedAt: metav1.NewTime(now)}
	if at := bindings.ExpiresAt(inv, now); at != nil {
		record.GrantsExpireAt = &metav1.Time{Time: *at}
	}
	inv.Status.Redemptions = append(inv.Status.Redemptions, record)
	if len(inv.Status.Redemptions) > maxRedemptions {
		inv.Status.Redemptions = inv.Status.Redemptions[len(inv.Status.Redemptions)-maxRedemptions:]
	}
}

// pruneSettled drops the pending entries of earlier redemptions whose bindings exist, so
// the write that claims new uses also clears finished ones.
func (s *Server) pruneSettled(ctx context.Context, inv *invitesv1alpha1.Invitation, fresh []string) {
	n := len(inv.Status.PendingRedemptions) - len(fresh)
	earlier := &invitesv1alpha1.Invitation{ObjectMeta: inv.ObjectMeta, Spec: inv.Spec}
	earlier.Status.PendingRedemptions = inv.Status.PendingRedemptions[:n]
	inv.Status.PendingRedemptions = append(s.unsettled(ctx, earlier), inv.Status.PendingRedemptions[n:]...)
}

func (g *group) fail(err error) {
	g.results = make([]claimResult, len(g.users))
	for i := range g.results {
		g.results[i] = claimResult{outcome: refused, err: err}
	}
}

func (g *group) refuseAll(inv *invitesv1alpha1.Invitation, refusal error) {
	g.results = make([]claimResult, len(g.users))
	for i := range g.results {
		g.results[i] = claimResult{inv: inv, outcome: refused, err: refusal}
	}
}
