package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

var (
	_ op.Storage                   = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest = (*storage)(nil)
)

var (
	errUnknownRequest = errors.New("unknown or expired sign-in request")
	errNotOffered     = errors.New("not offered by this provider")
)

// storage is the op.Storage of one provider, all in memory. Users, clients and the key are
// fixed at start; only sign-in requests, codes and access tokens change, under mu.
type storage struct {
	users   map[string]User
	clients map[string]*client
	key     *signingKey

	mu       sync.Mutex
	requests map[string]*authRequest
	codes    map[string]string // code to request ID
	tokens   map[string]accessToken
}

func newStorage(users []User, clients []Client) (*storage, error) {
	if len(clients) == 0 {
		return nil, errors.New("devidp: at least one client is required")
	}
	s := &storage{
		users:    make(map[string]User, len(users)),
		clients:  make(map[string]*client, len(clients)),
		requests: map[string]*authRequest{},
		codes:    map[string]string{},
		tokens:   map[string]accessToken{},
	}
	for _, u := range users {
		if _, dup := s.users[u.Username]; dup || u.Username == "" {
			return nil, fmt.Errorf("devidp: user %q is empty or duplicated", u.Username)
		}
		s.users[u.Username] = u
	}
	for _, c := range clients {
		if _, dup := s.clients[c.ID]; dup || c.ID == "" || len(c.RedirectURIs) == 0 {
			return nil, fmt.Errorf("devidp: client %q is empty, duplicated or has no redirect URI", c.ID)
		}
		s.clients[c.ID] = &client{id: c.ID, secret: c.Secret, redirectURIs: slices.Clone(c.RedirectURIs)}
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	s.key = &signingKey{id: rand.Text(), key: key}
	return s, nil
}

// checkPassword reports the user whose username and password these are.
func (s *storage) checkPassword(username, password string) (User, bool) {
	u, ok := s.users[username]
	if !ok || subtle.ConstantTimeCompare([]byte(u.Password), []byte(password)) != 1 {
		return User{}, false
	}
	return u, true
}

// request returns a copy of a live sign-in request; callers hold mu.
func (s *storage) request(id string) (*authRequest, error) {
	r, ok := s.requests[id]
	if !ok || time.Now().After(r.expires) {
		return nil, errUnknownRequest
	}
	c := *r
	return &c, nil
}

// completeLogin records who signed in, which lets the op package's callback issue a code.
func (s *storage) completeLogin(id, username string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.request(id); err != nil {
		return err
	}
	s.requests[id].subject = username
	s.requests[id].authTime = time.Now()
	return nil
}

// CreateAuthRequest stores a validated authorization request until the user signs in.
// The op package checks PKCE only at the token endpoint; refusing here instead tells a
// public client at once, at its redirect URI.
func (s *storage) CreateAuthRequest(_ context.Context, r *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if slices.Contains(r.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired() // there are no sessions to reuse
	}
	if c := s.clients[r.ClientID]; c != nil && c.public() &&
		(r.CodeChallenge == "" || r.CodeChallengeMethod != oidc.CodeChallengeMethodS256) {
		return nil, oidc.ErrInvalidRequest().WithDescription("public clients must use PKCE with S256")
	}
	req := newAuthRequest(rand.Text(), r)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests[req.id] = req
	c := *req
	return &c, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.request(id)
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.request(s.codes[code])
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code is redeemed, which makes codes single-use.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.requests, id)
	for code, requestID := range s.codes {
		if requestID == id {
			delete(s.codes, code)
		}
	}
	return nil
}

func (s *storage) CreateAccessToken(_ context.Context, r op.TokenRequest) (string, time.Time, error) {
	t := accessToken{subject: r.GetSubject(), scopes: r.GetScopes(), expires: time.Now().Add(tokenLifetime)}
	if a, ok := r.(*authRequest); ok {
		t.clientID = a.clientID
	}
	id := rand.Text()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tokens[id] = t
	return id, t.expires, nil
}

// token returns a live access token by ID.
func (s *storage) token(id string) (accessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok || time.Now().After(t.expires) {
		return accessToken{}, errors.New("unknown or expired access token")
	}
	return t, nil
}

// Refresh tokens are not offered: clients have only the authorization_code grant.

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, fmt.Errorf("refresh tokens are %w", errNotOffered)
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t, ok := s.tokens[tokenID]; ok && t.clientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("the token was issued to another client")
	}
	delete(s.tokens, tokenID)
	return nil
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if c, ok := s.clients[id]; ok {
		return c, nil
	}
	return nil, fmt.Errorf("unknown client %q", id)
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || c.public() || subtle.ConstantTimeCompare([]byte(c.secret), []byte(secret)) != 1 {
		return errors.New("wrong client ID or secret")
	}
	return nil
}

// SetUserinfoFromScopes is empty as the op package asks; SetUserinfoFromRequest fills
// ID tokens.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, r op.IDTokenRequest, scopes []string) error {
	return s.userinfo(info, r.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	t, err := s.token(tokenID)
	if err != nil {
		return err
	}
	return s.userinfo(info, t.subject, t.scopes)
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	t, err := s.token(tokenID)
	if err != nil || t.clientID != clientID {
		return errors.New("the token is not active for this client")
	}
	info := new(oidc.UserInfo)
	if err := s.userinfo(info, t.subject, t.scopes); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope, resp.ClientID, resp.Expiration = t.scopes, t.clientID, oidc.FromTime(t.expires)
	return nil
}

// userinfo sets the claims of a user that the scopes grant. Groups are always set.
func (s *storage) userinfo(info *oidc.UserInfo, username string, scopes []string) error {
	u, ok := s.users[username]
	if !ok {
		return fmt.Errorf("unknown user %q", username)
	}
	info.Subject = u.Username
	if slices.Contains(scopes, oidc.ScopeEmail) {
		info.Email, info.EmailVerified = u.Email, oidc.Bool(u.EmailVerified)
		// The field is omitempty and would drop false, but kube-apiserver takes an email
		// username whose email_verified is missing as verified: false must be said.
		info.AppendClaims("email_verified", u.EmailVerified)
	}
	if slices.Contains(scopes, oidc.ScopeProfile) {
		info.Name, info.PreferredUsername = u.Name, u.Username
	}
	info.AppendClaims("groups", append([]string{}, u.Groups...))
	return nil
}

// Access tokens are opaque and only for userinfo, so no private claims are needed; JWT
// profile grants and private_key_jwt are not offered.

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, fmt.Errorf("private_key_jwt is %w", errNotOffered)
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, fmt.Errorf("the JWT profile grant is %w", errNotOffered)
}

func (s *storage) Health(context.Context) error { return nil }
