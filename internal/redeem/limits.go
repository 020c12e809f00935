package redeem

import (
	"context"
	"errors"
	"hash/fnv"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Limits make guessing expensive and honest use free.
//
// Failures (unknown tokens, bad credentials, malformed requests) spend a client's failure
// budget, so a client that guesses is slowed to a crawl. Wrong secrets for a token ID lock
// out the client that sent them from that ID, and nobody else: token IDs are visible to
// whoever may read the Invitation, so a lockout that applied to everyone would let anyone
// lock the invited person out without ever holding a credential. Many clients guessing one
// ID put it under attack, which tightens every client's allowance for it but never refuses
// a client that has not failed on it, so the right secret always gets through.
//
// Refusals of any other kind (an exhausted, expired or revoked invitation, a policy denial)
// are bounded too, per client and per authenticated user, because each one costs work and
// often API server requests. A crowd redeeming one code at the same moment is never
// refused: successes cost nothing, and each person has a budget of their own.
//
// The state is per replica: an attacker spread over N replicas gets N times the budget,
// which the token sizes in package token allow for.
type Limits struct {
	// FailuresPerClient refills a client's failure budget; ClientBurst is its size.
	FailuresPerClient rate.Limit
	ClientBurst       int
	// LockAfter wrong secrets for one token ID from one client within LockWindow lock that
	// client out of that ID for LockFor.
	LockAfter  int
	LockWindow time.Duration
	LockFor    time.Duration
	// IDFailures refills the failure budget of a token ID across all clients; IDBurst is its
	// size (0: no ID-wide budget). While it is spent the ID is under attack, and a client is
	// locked out of it after LockAfterUnderAttack wrong secrets instead of LockAfter.
	IDFailures           rate.Limit
	IDBurst              int
	LockAfterUnderAttack int
	// RefusalsPerClient refills a client's budget for refusals of any kind; RefusalBurst is
	// its size (0: unbounded).
	RefusalsPerClient rate.Limit
	RefusalBurst      int
	// RefusalsPerUser and UserRefusalBurst do the same per authenticated user, wherever
	// their requests come from (0: unbounded).
	RefusalsPerUser  rate.Limit
	UserRefusalBurst int
}

// DefaultLimits are explained, with the arithmetic behind them, in docs/security.md
// ("Guessing tokens").
var DefaultLimits = Limits{
	FailuresPerClient: rate.Every(time.Minute), ClientBurst: 10,
	LockAfter: 5, LockWindow: 15 * time.Minute, LockFor: 15 * time.Minute,
	IDFailures: rate.Every(time.Minute), IDBurst: 20, LockAfterUnderAttack: 2,
	RefusalsPerClient: rate.Every(time.Second), RefusalBurst: 100,
	RefusalsPerUser: rate.Every(30 * time.Second), UserRefusalBurst: 10,
}

// limiterSize bounds each kind of counter; the least recently used go first.
const limiterSize = 100_000

// limiter keeps the counters, bounded in memory by least-recent eviction.
type limiter struct {
	limits Limits
	clock  clock.PassiveClock
	mu     sync.Mutex
	// failures and refusals are token buckets per client; users per username.
	failures, refusals, users *utilcache.LRUExpireCache
	// ids are ID-wide failure buckets; pairs count one client's failures on one ID.
	ids, pairs *utilcache.LRUExpireCache
	// guesses serialize each client's token checks (see tryToken); auths bound how many of
	// its credentials are checked at once (see Server.authenticate).
	guesses [stripes]sync.Mutex
	auths   [stripes]chan struct{}
}

// pairKey is one client guessing at one token ID.
type pairKey struct{ client, id string }

type pairState struct {
	failures    int
	windowStart time.Time
	lockedUntil time.Time
}

func newLimiter(limits Limits, c clock.PassiveClock) *limiter {
	l := &limiter{limits: limits, clock: c,
		failures: utilcache.NewLRUExpireCache(limiterSize), refusals: utilcache.NewLRUExpireCache(limiterSize),
		users: utilcache.NewLRUExpireCache(limiterSize), ids: utilcache.NewLRUExpireCache(limiterSize),
		pairs: utilcache.NewLRUExpireCache(limiterSize)}
	for i := range l.auths {
		l.auths[i] = make(chan struct{}, authConcurrency)
	}
	return l
}

// bucket returns the token bucket for key, making a full one when there is none. An
// unbounded limit (burst 0) has no bucket.
func (l *limiter) bucket(c *utilcache.LRUExpireCache, key string, every rate.Limit, burst int) *rate.Limiter {
	if burst <= 0 {
		return nil
	}
	if b, ok := c.Get(key); ok {
		return b.(*rate.Limiter)
	}
	b := rate.NewLimiter(every, burst)
	c.Add(key, b, time.Hour)
	return b
}

// wait says how long until the bucket has room again, or 0 when it has some now.
func (l *limiter) wait(b *rate.Limiter) time.Duration {
	now := l.clock.Now()
	if b == nil || b.TokensAt(now) >= 1 {
		return 0
	}
	r := b.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	r.CancelAt(now)
	return max(delay, time.Second)
}

// spend takes one token from the bucket, if there is one.
func (l *limiter) spend(b *rate.Limiter) {
	if b != nil {
		b.AllowN(l.clock.Now(), 1)
	}
}

// clientBlocked says how long the client must wait, or 0: a client whose failure or
// refusal budget is spent is refused before any work is done.
func (l *limiter) clientBlocked(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return max(
		l.wait(l.bucket(l.failures, client, l.limits.FailuresPerClient, l.limits.ClientBurst)),
		l.wait(l.bucket(l.refusals, client, l.limits.RefusalsPerClient, l.limits.RefusalBurst)))
}

// userBlocked says how long an authenticated user must wait after too many refusals.
func (l *limiter) userBlocked(user string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.wait(l.bucket(l.users, user, l.limits.RefusalsPerUser, l.limits.UserRefusalBurst))
}

// clientFailed spends one of the client's failures.
func (l *limiter) clientFailed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spend(l.bucket(l.failures, client, l.limits.FailuresPerClient, l.limits.ClientBurst))
}

// refused spends one refusal of the client's and, once authenticated, of the user's.
func (l *limiter) refused(client, user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.spend(l.bucket(l.refusals, client, l.limits.RefusalsPerClient, l.limits.RefusalBurst))
	if user != "" {
		l.spend(l.bucket(l.users, user, l.limits.RefusalsPerUser, l.limits.UserRefusalBurst))
	}
}

// idLocked says how long this client stays locked out of the token ID, or 0. Other
// clients' failures never lock a client out.
func (l *limiter) idLocked(client, id string) time.Duration {
	if id == "" {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.pairs.Get(pairKey{client, id})
	if !ok {
		return 0
	}
	return max(s.(*pairState).lockedUntil.Sub(l.clock.Now()), 0)
}

// idFailed counts a wrong secret for a token ID from a client: it spends the ID-wide
// budget, and locks the client out of the ID once it has failed on it often enough (less
// often while the ID is under attack).
func (l *limiter) idFailed(client, id string) {
	if id == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	idBucket := l.bucket(l.ids, id, l.limits.IDFailures, l.limits.IDBurst)
	l.spend(idBucket)
	key := pairKey{client, id}
	s := &pairState{windowStart: now}
	if v, ok := l.pairs.Get(key); ok {
		s = v.(*pairState)
	}
	if now.Sub(s.windowStart) > l.limits.LockWindow {
		s.failures, s.windowStart = 0, now
	}
	s.failures++
	lockAfter := l.limits.LockAfter
	if idBucket != nil && idBucket.TokensAt(now) < 1 && l.limits.LockAfterUnderAttack > 0 {
		lockAfter = min(lockAfter, l.limits.LockAfterUnderAttack)
	}
	if s.failures >= lockAfter {
		s.lockedUntil, s.failures, s.windowStart = now.Add(l.limits.LockFor), 0, now
	}
	l.pairs.Add(key, s, l.limits.LockWindow+l.limits.LockFor)
}

// tryToken looks a submitted token up for a client, within the client's limits: refused
// while its budgets are spent or it is locked out of the token's ID, and a wrong token is
// charged to it at once. The check, the lookup and the charge happen under the client's
// lock, so a client that sends many guesses at the same moment cannot have them all checked
// against a budget none of them has spent yet. The lookup reads the cache only, so holding
// the lock costs little; people behind one address simply take turns for it.
func (s *Server) tryToken(ctx context.Context, w http.ResponseWriter, client, submitted, id string) (*invitesv1alpha1.Invitation, error) {
	unlock := s.limits().lockClient(client)
	defer unlock()
	if refusal := s.admitClient(w, client); refusal != nil {
		return nil, refusal
	}
	if wait := s.limits().idLocked(client, id); wait > 0 {
		retryAfter(w, wait)
		return nil, errLocked
	}
	inv, err := s.lookup(ctx, submitted)
	if errors.Is(err, errUnknownToken) {
		s.limits().clientFailed(client)
		s.limits().idFailed(client, id)
	}
	return inv, err
}

// lockClient serializes one client's token checks.
func (l *limiter) lockClient(client string) func() {
	m := &l.guesses[stripe(client)]
	m.Lock()
	return m.Unlock
}

// authConcurrency is how many credentials one client may have checked at the same time.
const authConcurrency = 8

// authSlot waits until the client may have one more credential checked, or the request
// ends; the returned function gives the slot back.
func (l *limiter) authSlot(ctx context.Context, client string) (func(), error) {
	slots := l.auths[stripe(client)]
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// stripes is how many locks and slot sets clients share, by a hash of their address:
// memory stays fixed, and two clients rarely wait for each other.
const stripes = 256

func stripe(client string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(client))
	return h.Sum32() % stripes
}

// clientOf is the network a client's attempts are counted against: its IPv4 address, or
// the /64 its IPv6 address is in, since one subscriber or host is routinely given a whole
// /64 and could otherwise count as 2⁶⁴ clients.
//
// Behind a proxy every request comes from the proxy, so for a peer in TrustedProxies the
// client is the last address in X-Forwarded-For that is not itself a trusted proxy: the
// right-most entries are the ones the trusted proxies added, while everything to their left
// is whatever the client chose to send. Without trusted proxies the header is ignored,
// since anyone could forge it.
func (s *Server) clientOf(r *http.Request) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if !s.trusted(peer) {
		return network(peer)
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			return network(peer) // a malformed chain is not evidence of anything
		}
		if !s.trusted(hop) {
			return network(hop)
		}
	}
	return network(peer)
}

// network is the address for IPv4 (also when written as IPv4-mapped IPv6) and the /64 for
// IPv6; anything unparsable is kept as it is.
func network(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap().WithZone("")
	if ip.Is4() {
		return ip.String()
	}
	return netip.PrefixFrom(ip, 64).Masked().String()
}

func (s *Server) trusted(addr string) bool {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.TrustedProxies {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}
