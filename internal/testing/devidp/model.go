package devidp

import (
	"crypto/rsa"
	"net/url"
	"slices"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

const (
	// groupsScope is accepted and advertised, but groups are in every ID token: Kubernetes
	// needs them, and not every client asks.
	groupsScope = "groups"
	// requestLifetime bounds how long a sign-in may take and how long its code is valid.
	requestLifetime = 10 * time.Minute
	tokenLifetime   = time.Hour
)

// client implements op.Client for the authorization code flow only.
type client struct {
	id           string
	secret       string
	redirectURIs []string
}

func (c *client) public() bool { return c.secret == "" }

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.redirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }

// ApplicationType is web for every client so that redirect URIs must match exactly; the op
// package would let native clients' loopback redirects use any port.
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }

// AuthMethod is none for public clients, which makes the op package demand PKCE at the
// token endpoint. Basic also admits client_secret_post: both carry the secret.
func (c *client) AuthMethod() oidc.AuthMethod {
	if c.public() {
		return oidc.AuthMethodNone
	}
	return oidc.AuthMethodBasic
}

// The client may only use the code flow, with tokens that live an hour.

func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration      { return tokenLifetime }
func (c *client) ClockSkew() time.Duration            { return 0 }
func (c *client) DevMode() bool                       { return false }
func (c *client) LoginURL(id string) string           { return loginPath + "?id=" + url.QueryEscape(id) }
func (c *client) IsScopeAllowed(scope string) bool    { return scope == groupsScope }

// IDTokenUserinfoClaimsAssertion is true because Kubernetes reads the user's claims from
// the ID token; without it the op package keeps them for the userinfo endpoint only.
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }

//nolint:revive // the name is op.Client's
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string     { return keepScopes }
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string { return keepScopes }

func keepScopes(scopes []string) []string { return scopes }

// authRequest implements op.AuthRequest. Storage hands out copies, so the op package never
// reads one while the login page completes it.
type authRequest struct {
	id           string
	clientID     string
	redirectURI  string
	state        string
	nonce        string
	scopes       []string
	responseType oidc.ResponseType
	responseMode oidc.ResponseMode
	challenge    *oidc.CodeChallenge
	expires      time.Time
	subject      string // set once the user has signed in
	authTime     time.Time
}

func newAuthRequest(id string, r *oidc.AuthRequest) *authRequest {
	a := &authRequest{
		id:           id,
		clientID:     r.ClientID,
		redirectURI:  r.RedirectURI,
		state:        r.State,
		nonce:        r.Nonce,
		scopes:       slices.Clone(r.Scopes),
		responseType: r.ResponseType,
		responseMode: r.ResponseMode,
		expires:      time.Now().Add(requestLifetime),
	}
	if r.CodeChallenge != "" {
		method := r.CodeChallengeMethod
		if method == "" {
			method = oidc.CodeChallengeMethodPlain // RFC 7636, section 4.3
		}
		a.challenge = &oidc.CodeChallenge{Challenge: r.CodeChallenge, Method: method}
	}
	return a
}

func (a *authRequest) GetID() string                         { return a.id }
func (a *authRequest) GetACR() string                        { return "" }
func (a *authRequest) GetAudience() []string                 { return []string{a.clientID} }
func (a *authRequest) GetAuthTime() time.Time                { return a.authTime }
func (a *authRequest) GetClientID() string                   { return a.clientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return a.challenge }
func (a *authRequest) GetNonce() string                      { return a.nonce }
func (a *authRequest) GetRedirectURI() string                { return a.redirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType    { return a.responseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode    { return a.responseMode }
func (a *authRequest) GetScopes() []string                   { return a.scopes }
func (a *authRequest) GetState() string                      { return a.state }
func (a *authRequest) GetSubject() string                    { return a.subject }
func (a *authRequest) Done() bool                            { return a.subject != "" }

func (a *authRequest) GetAMR() []string {
	if a.Done() {
		return []string{"pwd"}
	}
	return nil
}

// accessToken is what an opaque access token stands for, for the userinfo endpoint.
type accessToken struct {
	subject  string
	clientID string
	scopes   []string
	expires  time.Time
}

// signingKey implements op.SigningKey; publicKey is its op.Key for the JWKS.
type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k *signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k *signingKey) Key() any                                    { return k.key }
func (k *signingKey) ID() string                                  { return k.id }

type publicKey struct{ *signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }
