// Package redeem is the redemption server: it checks who is redeeming, claims a use of the
// invitation without ever exceeding maxUses, and binds the promised roles to exactly the
// username the API server sees for that person.
package redeem

import (
	"context"
	"encoding/json"
	"errors"
	"math"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/metrics"
	"github.com/rolecall/rolecall/internal/policy"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/token"
)

// maxBody bounds a redemption request: a token and some JSON punctuation.
const maxBody = 4 << 10

// Server serves redemptions. Every replica runs one.
type Server struct {
	// Reader finds invitations (the manager's cache, with TokenHashIndex).
	Reader client.Reader
	// Live reads and writes past the cache: claims must see the latest version.
	Live client.Client
	// Sealer hashes tokens for lookup and verifies and signs what rolecall acts on.
	Sealer        *seal.Sealer
	Authenticator identity.Authenticator
	Authorizer    *policy.Authorizer
	Clock         clock.PassiveClock
	Recorder      events.EventRecorder
	Log           logr.Logger
	// AllowedRedirectOrigins are the origins (scheme://host[:port]) redirects may go to.
	AllowedRedirectOrigins []string

	// SignIn, when set, lets people redeem from the landing page by signing in with the
	// cluster's identity provider. Without it the page shows the offer and how to redeem
	// with kubectl.
	SignIn *SignIn

	// TrustedProxies are the networks of the proxies in front of the server (an Ingress
	// controller): for requests from them, the client is read from X-Forwarded-For.
	TrustedProxies []netip.Prefix
	// Limits bound failed attempts; the zero value means DefaultLimits.
	Limits Limits

	// AfterClaim, when set, runs between claiming a use and binding: the moment a crash
	// would hurt most. Fault-injection tests use it; an error stops the redemption there,
	// as a crash would, leaving the claim for the controller to settle.
	AfterClaim func() error

	invitations invitations
	finished    finished
	limiterOnce sync.Once
	limiter     *limiter
}

func (s *Server) limits() *limiter {
	s.limiterOnce.Do(func() {
		limits := s.Limits
		if limits == (Limits{}) {
			limits = DefaultLimits
		}
		s.limiter = newLimiter(limits, s.Clock)
	})
	return s.limiter
}

// Handler routes the landing pages, the sign-in, the redemption API and the server's own
// probes.
func (s *Server) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/redemptions", s.handleRedemption)
	// Browsers refuse to send cross-origin form posts past this check (Sec-Fetch-Site and
	// Origin); the CSRF token covers browsers too old to say where a request came from.
	forms := http.NewCrossOriginProtection()
	mux.HandleFunc("GET /{$}", s.handleHome)
	mux.HandleFunc("GET /i", s.handleHome)
	mux.HandleFunc("GET /i/{token}", s.handleLanding)
	mux.Handle("POST /i/{token}/accept", forms.Handler(s.handleAction(actionAccept)))
	mux.Handle("POST /i/{token}/decline", forms.Handler(s.handleAction(actionDecline)))
	mux.HandleFunc("GET "+CallbackPath, s.handleCallback)
	mux.HandleFunc("GET /static/style.css", handleStyle)
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	return securityHeaders(boundBodies(mux))
}

// maxRequestBody bounds every request's body before any handler reads it; handlers bound
// what they parse more tightly still (maxBody, maxFormBody).
const maxRequestBody = 16 << 10

// boundBodies: nothing this server accepts is larger than a few KiB, so no request may make
// it read (or a form parser buffer) more.
func boundBodies(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ContentLength > maxRequestBody {
			w.Header().Set("Connection", "close")
			writeJSON(w, errTooLarge.Status, errTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, maxRequestBody)
		next.ServeHTTP(w, r)
	})
}

// securityHeaders: answers are about one person and one secret; nothing may cache,
// sniff or frame them.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Content-Security-Policy", "default-src 'none'; frame-ancestors 'none'")
		next.ServeHTTP(w, r)
	})
}

type request struct {
	Token string `json:"token"`
}

func (s *Server) handleRedemption(w http.ResponseWriter, r *http.Request) {
	start := s.Clock.Now()
	client := s.clientOf(r)
	if refusal := s.admitClient(w, client); refusal != nil {
		s.Log.Info("redemption", "status", refusal.Status, "code", refusal.Code, "client", client)
		s.observe(Result{}, refusal, start)
		writeJSON(w, refusal.Status, refusal)
		return
	}
	result, refusal, user, tokenID := s.serve(w, r, client)
	s.account(client, user, refusal)
	s.accountRepeat(client, user, result, refusal)
	status := http.StatusOK
	var body any = result
	switch {
	case refusal != nil:
		status, body = refusal.Status, refusal
	case result.created:
		status = http.StatusCreated
	}
	// The audit line: who, which invitation, what happened. Never the token.
	s.Log.Info("redemption", "status", status, "code", codeOf(refusal), "user", user,
		"tokenID", tokenID, "invitation", result.Namespace+"/"+result.Invitation, "duration", s.Clock.Since(start).String())
	s.observe(result, refusal, start)
	writeJSON(w, status, body)
}

// observe counts a redemption's outcome and how long it took, for the metrics endpoint.
func (s *Server) observe(result Result, refusal *Error, start time.Time) {
	outcome := "already_redeemed"
	switch {
	case refusal != nil:
		outcome = refusal.Code
	case result.created:
		outcome = "redeemed"
	}
	if refusal == errPolicyDenied {
		metrics.PolicyDenials.WithLabelValues("redemption").Inc()
	}
	metrics.Redemptions.WithLabelValues(outcome).Inc()
	metrics.RedemptionDuration.WithLabelValues(outcome).Observe(s.Clock.Since(start).Seconds())
}

// admitClient refuses, before any work, a client whose failure or refusal budget is spent.
func (s *Server) admitClient(w http.ResponseWriter, client string) *Error {
	if wait := s.limits().clientBlocked(client); wait > 0 {
		retryAfter(w, wait)
		return errRateLimited
	}
	return nil
}

// admitUser refuses, before the invitation is looked at, an authenticated user whose
// refusal budget is spent: one credential cannot make the server and the API server
// answer "no" over and over.
func (s *Server) admitUser(w http.ResponseWriter, user string) *Error {
	if wait := s.limits().userBlocked(user); wait > 0 {
		retryAfter(w, wait)
		return errUserRateLimited
	}
	return nil
}

// account charges a refusal to the refusal budgets of the client and the user (once
// known). Failures were charged to the failure budget where they happened (malformed
// requests and credentials in serve, wrong tokens in tryToken). Refusals that are the
// server's fault (5xx) and rate limiting itself cost nothing, so a client that waits as
// Retry-After says is let in.
func (s *Server) account(client, user string, refusal *Error) {
	if refusal == nil {
		return
	}
	if refusal.Status >= 400 && refusal.Status < 500 && refusal.Status != http.StatusTooManyRequests {
		s.limits().refused(client, user)
	}
}

// accountRepeat charges "already redeemed" (200) like a refusal: it grants nothing, and
// each one is confirmed with the API server, so a loop of them must not be free either.
func (s *Server) accountRepeat(client, user string, result Result, refusal *Error) {
	if refusal == nil && !result.created {
		s.limits().refused(client, user)
	}
}

func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(max(wait, time.Second).Seconds()))))
}

func codeOf(e *Error) string {
	if e == nil {
		return "redeemed"
	}
	return e.Code
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// serve parses, authenticates and redeems; it returns either a result or a refusal, with
// the user and token ID the refusal is charged to.
func (s *Server) serve(w http.ResponseWriter, r *http.Request, client string) (Result, *Error, string, string) {
	var req request
	decoder := json.NewDecoder(http.MaxBytesReader(nil, r.Body, maxBody))
	decoder.DisallowUnknownFields()
	if err := decoder.Decode(&req); err != nil || req.Token == "" {
		s.limits().clientFailed(client)
		return Result{}, errMalformed, "", ""
	}
	// The token's public ID, if it has one, is what this client may be locked out of.
	parsed, _ := token.Parse(req.Token)
	if wait := s.limits().idLocked(client, parsed.ID); wait > 0 {
		retryAfter(w, wait)
		return Result{}, errLocked, "", parsed.ID
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	user, refusal := s.authenticate(ctx, w, client, r.Header.Get("Authorization"))
	if refusal != nil {
		return Result{}, refusal, "", parsed.ID
	}
	if refusal := s.admitUser(w, user.Username); refusal != nil {
		return Result{}, refusal, user.Username, parsed.ID
	}
	if _, err := s.tryToken(ctx, w, client, req.Token, parsed.ID); err != nil {
		return Result{}, s.failure(err), user.Username, parsed.ID
	}
	result, refusal := s.Redeem(ctx, req.Token, user)
	return result, refusal, user.Username, parsed.ID
}

// authenticate checks the bearer credential within the client's limits; a missing or
// refused credential is charged to the client at once. A client has only a few credentials
// checked at the same time, each after waiting its turn and with the client's budget
// checked again, so made-up credentials sent all at once cost the API server no more
// TokenReviews than the budget allows, plus the few in flight.
func (s *Server) authenticate(ctx context.Context, w http.ResponseWriter, client, authorization string) (identity.User, *Error) {
	credential, ok := strings.CutPrefix(authorization, "Bearer ")
	if !ok || credential == "" {
		s.limits().clientFailed(client)
		return identity.User{}, errUnauthenticated
	}
	release, err := s.limits().authSlot(ctx, client)
	if err != nil {
		return identity.User{}, errUnavailable // the request ended while it waited
	}
	defer release()
	if refusal := s.admitClient(w, client); refusal != nil {
		return identity.User{}, refusal
	}
	user, err := s.Authenticator.Authenticate(ctx, credential)
	switch {
	case errors.Is(err, identity.ErrUnavailable):
		return identity.User{}, errUnavailable
	case err != nil:
		s.limits().clientFailed(client)
		return identity.User{}, errUnauthenticated
	}
	return user, nil
}
