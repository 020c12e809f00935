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
)

// Settling. Once a redemption's bindings exist, its pending entry must go, and only the
// server that made the bindings knows for certain that they existed: the controller sees
// bindings through its cache, and an administrator may delete them a moment after they
// were made. Were the entry still pending then, the controller could not tell that
// redemption from one a crash interrupted before binding, and would give its use back,
// letting the person claim the grant the administrator just took away. So the server
// clears its own finished claims, a moment after answering, in one write for everyone
// who finished on that invitation meanwhile.

// settleDelay is how long finished claims wait to be cleared together: under a crowd one
// write clears many, and a lone redemption's answer does not wait for the write.
const settleDelay = 500 * time.Millisecond

// finished holds, per invitation, the claims this replica completed and has not cleared.
type finished struct {
	mu      sync.Mutex
	pending map[types.NamespacedName][]invitesv1alpha1.PendingRedemption
}

// add records a completed claim and says whether it is the first waiting for its
// invitation (whoever adds the first schedules the write).
func (f *finished) add(key types.NamespacedName, p invitesv1alpha1.PendingRedemption) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pending == nil {
		f.pending = map[types.NamespacedName][]invitesv1alpha1.PendingRedemption{}
	}
	f.pending[key] = append(f.pending[key], p)
	return len(f.pending[key]) == 1
}

// take removes and returns the invitation's completed claims.
func (f *finished) take(key types.NamespacedName) []invitesv1alpha1.PendingRedemption {
	f.mu.Lock()
	defer f.mu.Unlock()
	done := f.pending[key]
	delete(f.pending, key)
	return done
}

// finish records that the user's claim made at claimedAt is complete, and clears it from
// the invitation's status soon, with whoever else finishes meanwhile.
func (s *Server) finish(key types.NamespacedName, user string, claimedAt time.Time) {
	if !s.finished.add(key, invitesv1alpha1.PendingRedemption{User: user, ClaimedAt: metav1.NewTime(claimedAt)}) {
		return
	}
	time.AfterFunc(settleDelay, func() {
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		defer cancel()
		if err := s.clearFinished(ctx, key, s.finished.take(key)); err != nil {
			// The controller clears entries whose bindings it sees.
			s.Log.Error(err, "clearing finished redemptions", "invitation", key.String())
		}
	})
}

// clearFinished removes the finished claims' pending entries from the latest version,
// between group commits, keeping the uses they took and their redemption records.
func (s *Server) clearFinished(ctx context.Context, key types.NamespacedName, done []invitesv1alpha1.PendingRedemption) error {
	if len(done) == 0 {
		return nil
	}
	entry, release := s.invitations.exclusive(key)
	defer release()
	for range claimAttempts {
		inv := &invitesv1alpha1.Invitation{}
		if err := s.Live.Get(ctx, key, inv); err != nil {
			return client.IgnoreNotFound(err)
		}
		kept := slices.DeleteFunc(slices.Clone(inv.Status.PendingRedemptions), func(p invitesv1alpha1.PendingRedemption) bool {
			return slices.ContainsFunc(done, func(d invitesv1alpha1.PendingRedemption) bool { return sameClaim(p, d) })
		})
		if len(kept) == len(inv.Status.PendingRedemptions) {
			return nil
		}
		inv.Status.PendingRedemptions = kept
		err := s.Live.Status().Update(ctx, inv)
		if err == nil {
			entry.written = inv
			return nil
		}
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return errUnavailable
}

// sameClaim: the same person's claim of the same moment, as the API server stores it.
func sameClaim(a, b invitesv1alpha1.PendingRedemption) bool {
	return a.User == b.User && a.ClaimedAt.UTC().Truncate(time.Second).Equal(b.ClaimedAt.UTC().Truncate(time.Second))
}
