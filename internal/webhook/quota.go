package webhook

import (
	"context"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// admittedTTL is how long a create this process admitted counts against its inviter's
// quota without being seen in the API server. A create is stored within moments of its
// admission; one that failed after admission stops counting after this.
const admittedTTL = 30 * time.Second

// quota makes maxActiveInvitationsPerInviter hold when one inviter creates many
// invitations at once. The cache lags behind the API server, and even a live list cannot
// see a create that was admitted but not yet stored, so each inviter's creates are
// admitted one at a time, counted from a live list plus the creates this process admitted
// that the list does not show yet.
type quota struct {
	mu       sync.Mutex
	inviters map[string]*inviterQuota
}

// inviterQuota is one inviter's lock and the creates admitted for them.
type inviterQuota struct {
	mu       sync.Mutex
	users    int
	admitted map[types.NamespacedName]time.Time
}

// lock serializes the admission of one inviter's creates; the returned function unlocks.
func (q *quota) lock(username string) (*inviterQuota, func()) {
	q.mu.Lock()
	if q.inviters == nil {
		q.inviters = map[string]*inviterQuota{}
	}
	q.sweep(time.Now())
	iq, ok := q.inviters[username]
	if !ok {
		iq = &inviterQuota{admitted: map[types.NamespacedName]time.Time{}}
		q.inviters[username] = iq
	}
	iq.users++
	q.mu.Unlock()
	iq.mu.Lock()
	return iq, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		iq.users--
		if iq.users == 0 && len(iq.admitted) == 0 {
			delete(q.inviters, username)
		}
		iq.mu.Unlock()
	}
}

// count is the inviter's other open invitations: those the API server holds, and those
// admitted here that it does not show yet. It is called with iq locked.
// live lists invitations from the API server, by the selectable field spec.inviter.username.
func (q *quota) count(ctx context.Context, live client.Reader, iq *inviterQuota, inv *invitesv1alpha1.Invitation, username string, now time.Time) (int, error) {
	var list invitesv1alpha1.InvitationList
	if err := live.List(ctx, &list, client.MatchingFields{policy.InviterIndex: username}); err != nil {
		return 0, err
	}
	stored := make(map[types.NamespacedName]bool, len(list.Items))
	for _, item := range list.Items {
		stored[types.NamespacedName{Namespace: item.Namespace, Name: item.Name}] = true
	}
	count := policy.CountActive(list.Items, inv, nil)
	self := types.NamespacedName{Namespace: inv.Namespace, Name: inv.Name}
	for key, at := range iq.admitted {
		switch {
		case stored[key] || now.Sub(at) > admittedTTL:
			delete(iq.admitted, key)
		case key != self:
			count++
		}
	}
	return count, nil
}

// admit records a create admitted for the inviter. It is called with iq locked.
func (iq *inviterQuota) admit(inv *invitesv1alpha1.Invitation, now time.Time) {
	key := types.NamespacedName{Namespace: inv.Namespace, Name: inv.Name}
	if key.Name == "" {
		// Admission sees the generated name; should it not, the create still counts.
		key.Name = string(inv.UID) + now.String()
	}
	iq.admitted[key] = now
}

// sweep forgets the inviters nobody is admitting for whose admitted creates all expired.
// It is called with q.mu locked: an inviter with no users is only touched under it.
func (q *quota) sweep(now time.Time) {
	for username, iq := range q.inviters {
		if iq.users > 0 {
			continue
		}
		for key, at := range iq.admitted {
			if now.Sub(at) > admittedTTL {
				delete(iq.admitted, key)
			}
		}
		if len(iq.admitted) == 0 {
			delete(q.inviters, username)
		}
	}
}
