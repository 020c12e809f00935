package redeem

import (
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
)

// Limits bound guessing, not redeeming: only failed attempts (unknown tokens, bad
// credentials, malformed requests) cost a client anything, so a crowd redeeming one code at
// the same moment is never refused, while a client that guesses is slowed to a crawl. A
// token ID that keeps failing is locked for a while: whoever knows an ID (it is in status)
// cannot grind through its secret.
//
// The state is per replica: an attacker spread over N replicas gets N times the budget,
// which the token sizes in package token allow for.
type Limits struct {
	// FailuresPerClient refills a client's failure budget; ClientBurst is its size.
	FailuresPerClient rate.Limit
	ClientBurst       int
	// LockAfter failures on one token ID within LockWindow lock it for LockFor.
	LockAfter  int
	LockWindow time.Duration
	LockFor    time.Duration
}

// DefaultLimits let a client fail 10 times in a row, then once a minute, and lock a token
// ID for 15 minutes after 10 failures within 15 minutes.
var DefaultLimits = Limits{
	FailuresPerClient: rate.Every(time.Minute), ClientBurst: 10,
	LockAfter: 10, LockWindow: 15 * time.Minute, LockFor: 15 * time.Minute,
}

// limiter keeps the counters, bounded in memory by least-recent eviction.
type limiter struct {
	limits  Limits
	clock   clock.PassiveClock
	mu      sync.Mutex
	clients *utilcache.LRUExpireCache
	ids     *utilcache.LRUExpireCache
}

type idState struct {
	failures    int
	windowStart time.Time
	lockedUntil time.Time
}

func newLimiter(limits Limits, c clock.PassiveClock) *limiter {
	return &limiter{limits: limits, clock: c,
		clients: utilcache.NewLRUExpireCache(100_000), ids: utilcache.NewLRUExpireCache(100_000)}
}

func (l *limiter) clientBucket(client string) *rate.Limiter {
	if b, ok := l.clients.Get(client); ok {
		return b.(*rate.Limiter)
	}
	b := rate.NewLimiter(l.limits.FailuresPerClient, l.limits.ClientBurst)
	l.clients.Add(client, b, time.Hour)
	return b
}

// clientBlocked says how long the client must wait, or 0: a client with no failure budget
// left is refused before any work is done.
func (l *limiter) clientBlocked(client string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.clientBucket(client)
	if b.TokensAt(l.clock.Now()) >= 1 {
		return 0
	}
	r := b.ReserveN(l.clock.Now(), 1)
	delay := r.DelayFrom(l.clock.Now())
	r.CancelAt(l.clock.Now())
	return max(delay, time.Second)
}

// clientFailed spends one of the client's failures.
func (l *limiter) clientFailed(client string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.clientBucket(client).AllowN(l.clock.Now(), 1)
}

// idLocked says how long the token ID stays locked, or 0.
func (l *limiter) idLocked(id string) time.Duration {
	if id == "" {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	s, ok := l.ids.Get(id)
	if !ok {
		return 0
	}
	return max(s.(*idState).lockedUntil.Sub(l.clock.Now()), 0)
}

// idFailed counts a bad secret for a token ID, locking it when there are too many.
func (l *limiter) idFailed(id string) {
	if id == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	s := &idState{windowStart: now}
	if v, ok := l.ids.Get(id); ok {
		s = v.(*idState)
	}
	if now.Sub(s.windowStart) > l.limits.LockWindow {
		s.failures, s.windowStart = 0, now
	}
	s.failures++
	if s.failures >= l.limits.LockAfter {
		s.lockedUntil, s.failures, s.windowStart = now.Add(l.limits.LockFor), 0, now
	}
	l.ids.Add(id, s, l.limits.LockWindow+l.limits.LockFor)
}

// clientOf is the remote address without its port. Behind a proxy every client shares the
// proxy's address; put the limits at the proxy, or run the server where it sees clients.
// clientOf is the address a client's attempts are counted against. Behind a proxy every
// request comes from the proxy, so for a peer in TrustedProxies the client is the last
// address in X-Forwarded-For that is not itself a trusted proxy: the right-most entries are
// the ones the trusted proxies added, while everything to their left is whatever the client
// chose to send. Without trusted proxies the header is ignored, since anyone could forge it.
func (s *Server) clientOf(r *http.Request) string {
	peer, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		peer = r.RemoteAddr
	}
	if !s.trusted(peer) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			return peer // a malformed chain is not evidence of anything
		}
		if !s.trusted(hop) {
			return hop
		}
	}
	return peer
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
