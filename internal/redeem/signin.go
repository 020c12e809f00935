package redeem

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/rolecall/rolecall/internal/identity"
)

// SignIn makes the redemption server an OpenID Connect client of the cluster's identity
// provider, so a person can redeem from the browser: authorization code flow with PKCE,
// state and nonce. The ID token it receives is mapped to a Kubernetes user by the same
// Authenticator the JSON API uses.
type SignIn struct {
	IssuerURL string
	ClientID  string
	// ClientSecret is empty for a public client; PKCE protects the code either way.
	ClientSecret string
	// Scopes are requested besides openid (email is needed for email-bound invitations).
	Scopes []string
	// PublicURL is the redemption server's external base URL; the identity provider must
	// allow PublicURL + "/callback" as a redirect URI.
	PublicURL string
	// SessionKey seals the sign-in cookie: 32 bytes, the same on every replica.
	SessionKey []byte
	// HTTPClient reaches the issuer, trusting its CA; nil means http.DefaultClient.
	HTTPClient *http.Client

	mu       sync.Mutex
	provider *oidc.Provider
}

// CallbackPath is where the identity provider sends the browser back.
const CallbackPath = "/callback"

func (c *SignIn) secure() bool {
	return c != nil && strings.HasPrefix(c.PublicURL, "https://")
}

// discover fetches the issuer's configuration once it answers, and remembers it.
func (c *SignIn) discover(ctx context.Context) (*oidc.Provider, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.provider != nil {
		return c.provider, nil
	}
	provider, err := oidc.NewProvider(c.clientContext(ctx), c.IssuerURL)
	if err != nil {
		return nil, fmt.Errorf("%w: discovering %s: %w", identity.ErrUnavailable, c.IssuerURL, err)
	}
	c.provider = provider
	return provider, nil
}

func (c *SignIn) clientContext(ctx context.Context) context.Context {
	if c.HTTPClient == nil {
		return ctx
	}
	return oidc.ClientContext(ctx, c.HTTPClient)
}

func (c *SignIn) oauth2(provider *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: c.ClientID, ClientSecret: c.ClientSecret, Endpoint: provider.Endpoint(),
		RedirectURL: strings.TrimRight(c.PublicURL, "/") + CallbackPath,
		Scopes:      append([]string{oidc.ScopeOpenID}, c.Scopes...),
	}
}

// issuerOrigin is where the accept form's redirect goes; the page's CSP must allow it.
func (c *SignIn) issuerOrigin() string {
	if c == nil {
		return ""
	}
	u, err := url.Parse(c.IssuerURL)
	if err != nil {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// startSignIn begins a sign-in for accepting or declining: it remembers the flow in a
// sealed cookie and sends the browser to the identity provider.
func (s *Server) startSignIn(w http.ResponseWriter, r *http.Request, submitted, action string) {
	provider, err := s.SignIn.discover(r.Context())
	if err != nil {
		s.Log.Error(err, "sign-in unavailable")
		s.renderProblem(w, errUnavailable, "")
		return
	}
	f := flow{
		Token: submitted, Action: action, State: randomString(), Nonce: randomString(),
		Verifier: oauth2.GenerateVerifier(), Expires: s.Clock.Now().Add(flowLifetime),
	}
	sealed, err := sealCookie(s.SignIn.SessionKey, f)
	if err != nil {
		s.renderProblem(w, s.failure(err), "")
		return
	}
	s.cookie(w, flowCookie, sealed, CallbackPath, flowLifetime, http.SameSiteLaxMode)
	target := s.SignIn.oauth2(provider).AuthCodeURL(f.State, oidc.Nonce(f.Nonce), oauth2.S256ChallengeOption(f.Verifier))
	http.Redirect(w, r, target, http.StatusSeeOther)
}

var (
	errSignInFailed    = refuse(http.StatusBadRequest, "signin_failed", "the sign-in did not complete; start again from your invitation link")
	errSignInCancelled = refuse(http.StatusUnauthorized, "signin_cancelled", "the identity provider did not sign you in")
)

// handleCallback finishes a sign-in: the state must match the sealed cookie, the code is
// exchanged with the PKCE verifier, the ID token must carry the nonce; then the person
// accepts or declines as they chose on the landing page. The cookie is single-use.
func (s *Server) handleCallback(w http.ResponseWriter, r *http.Request) {
	client := s.clientOf(r)
	if wait := s.limits().clientBlocked(client); wait > 0 {
		retryAfter(w, wait)
		s.renderProblem(w, errRateLimited, "")
		return
	}
	s.clearCookie(w, flowCookie, CallbackPath)
	f, user, refusal := s.finishSignIn(r)
	if refusal != nil {
		if refusal == errSignInFailed {
			s.limits().clientFailed(client)
		}
		s.Log.Info("sign-in", "status", refusal.Status, "code", refusal.Code, "user", user.Username, "client", client)
		s.renderProblem(w, refusal, user.Username)
		return
	}
	if refusal := s.admitUser(w, user.Username); refusal != nil {
		s.renderProblem(w, refusal, user.Username)
		return
	}
	if f.Action == actionDecline {
		s.finishDecline(w, r, f, user)
		return
	}
	s.finishAccept(w, r, f, user)
}

func (s *Server) finishSignIn(r *http.Request) (flow, identity.User, *Error) {
	cookie, err := r.Cookie(flowCookie)
	if err != nil {
		return flow{}, identity.User{}, errSignInFailed
	}
	f, err := unsealCookie(s.SignIn.SessionKey, cookie.Value, s.Clock.Now())
	if err != nil || !equalStrings(f.State, r.URL.Query().Get("state")) {
		return flow{}, identity.User{}, errSignInFailed
	}
	if r.URL.Query().Get("error") != "" {
		return flow{}, identity.User{}, errSignInCancelled
	}
	ctx := s.SignIn.clientContext(r.Context())
	provider, err := s.SignIn.discover(ctx)
	if err != nil {
		return flow{}, identity.User{}, errUnavailable
	}
	tok, err := s.SignIn.oauth2(provider).Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(f.Verifier))
	if err != nil {
		s.Log.Info("sign-in: the code exchange failed", "error", err.Error())
		return flow{}, identity.User{}, errSignInFailed
	}
	raw, _ := tok.Extra("id_token").(string)
	idToken, err := provider.Verifier(&oidc.Config{ClientID: s.SignIn.ClientID}).Verify(ctx, raw)
	if err != nil || !equalStrings(idToken.Nonce, f.Nonce) {
		return flow{}, identity.User{}, errSignInFailed
	}
	// The same mapping as the JSON API, and so as the API server: the user the roles are
	// bound to is exactly the user this ID token makes in the cluster.
	user, err := s.Authenticator.Authenticate(r.Context(), raw)
	switch {
	case errors.Is(err, identity.ErrUnavailable):
		return flow{}, identity.User{}, errUnavailable
	case err != nil:
		return flow{}, identity.User{}, errNotAClusterUser
	}
	return f, user, nil
}

var errNotAClusterUser = refuse(http.StatusForbidden, "not_a_cluster_user",
	"the cluster does not accept this account's sign-in; ask your administrators which identity provider the cluster uses")

func (s *Server) finishAccept(w http.ResponseWriter, r *http.Request, f flow, user identity.User) {
	start := s.Clock.Now()
	result, refusal := s.Redeem(r.Context(), f.Token, user)
	parsed := parseID(f.Token)
	s.account(s.clientOf(r), user.Username, refusal)
	s.accountRepeat(s.clientOf(r), user.Username, result, refusal)
	s.Log.Info("redemption", "via", "browser", "status", statusOf(result, refusal), "code", codeOf(refusal), "user", user.Username,
		"tokenID", parsed, "invitation", result.Namespace+"/"+result.Invitation, "duration", s.Clock.Since(start).String())
	s.observe(result, refusal, start)
	if refusal != nil {
		s.renderProblem(w, refusal, user.Username)
		return
	}
	if result.RedirectURL != "" {
		http.Redirect(w, r, result.RedirectURL, http.StatusSeeOther)
		return
	}
	s.renderAccepted(w, result)
}

func (s *Server) finishDecline(w http.ResponseWriter, r *http.Request, f flow, user identity.User) {
	inv, refusal := s.Decline(r.Context(), f.Token, user)
	if refusal != nil {
		s.Log.Info("decline", "status", refusal.Status, "code", refusal.Code, "user", user.Username, "tokenID", parseID(f.Token))
		s.renderProblem(w, refusal, user.Username)
		return
	}
	s.Log.Info("decline", "status", http.StatusOK, "code", "declined", "user", user.Username, "tokenID", parseID(f.Token),
		"invitation", inv.Namespace+"/"+inv.Name)
	s.renderDeclined(w, inv)
}

func statusOf(result Result, refusal *Error) int {
	switch {
	case refusal != nil:
		return refusal.Status
	case result.created:
		return http.StatusCreated
	}
	return http.StatusOK
}
