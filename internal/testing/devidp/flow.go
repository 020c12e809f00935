package devidp

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"golang.org/x/oauth2"
)

// ErrWrongPassword is returned by Login when the login page refuses the credentials.
var ErrWrongPassword = errors.New("devidp: wrong username or password")

// Login signs a user in as a browser would, with the authorization code flow and PKCE (S256),
// and returns the raw ID token: GET the authorization endpoint, fill in the login form,
// follow the redirects to redirectURI (nothing needs to listen there: the redirect is
// caught, not followed), then redeem the code at the token endpoint. clientSecret is empty
// for a public client. It asks for the openid, email, profile and groups scopes and sends
// a fresh nonce, which the ID token must carry back.
func (s *Server) Login(ctx context.Context, clientID, clientSecret, redirectURI, username, password string) (string, error) {
	return s.login(ctx, clientID, clientSecret, redirectURI, username, password, rand.Text())
}

func (s *Server) login(ctx context.Context, clientID, clientSecret, redirectURI, username, password, nonce string) (string, error) {
	target, err := url.Parse(redirectURI)
	if err != nil {
		return "", err
	}
	b := s.newBrowser(target)
	conf := &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		RedirectURL:  redirectURI,
		Scopes:       []string{"openid", "email", "profile", groupsScope},
		Endpoint:     oauth2.Endpoint{AuthURL: s.authURL, TokenURL: s.tokenURL, AuthStyle: oauth2.AuthStyleInParams},
	}
	if clientSecret != "" {
		conf.Endpoint.AuthStyle = oauth2.AuthStyleInHeader
	}
	verifier, state := oauth2.GenerateVerifier(), rand.Text()

	authURL := conf.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("nonce", nonce))
	form, err := b.visit(ctx, http.MethodGet, authURL, nil)
	if err != nil {
		return "", err
	}
	if form.redirect != nil || form.at.Path != loginPath || form.status != http.StatusOK {
		return "", fmt.Errorf("devidp: authorization refused: %s", form)
	}
	creds := url.Values{"id": {form.at.Query().Get("id")}, "username": {username}, "password": {password}}
	back, err := b.visit(ctx, http.MethodPost, s.Issuer+loginPath, creds)
	if err != nil {
		return "", err
	}
	code, err := back.code(state)
	if err != nil {
		return "", err
	}

	token, err := conf.Exchange(context.WithValue(ctx, oauth2.HTTPClient, s.HTTPClient()), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("devidp: redeeming the code: %w", err)
	}
	idToken, _ := token.Extra("id_token").(string)
	// The token came straight from the token endpoint over TLS, so its signature needs no
	// check here (OpenID Connect Core 3.1.3.7); the nonce proves it answers this request.
	if got, err := nonceOf(idToken); err != nil || got != nonce {
		return "", errors.New("devidp: the token response has no ID token for this request")
	}
	return idToken, nil
}

// browser follows redirects with a cookie jar but stops at the client's redirect URI.
type browser struct {
	client *http.Client
}

func (s *Server) newBrowser(target *url.URL) *browser {
	jar, _ := cookiejar.New(nil) // never fails without options
	c := s.HTTPClient()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if sameEndpoint(req.URL, target) {
			return http.ErrUseLastResponse
		}
		if len(via) >= 10 {
			return errors.New("too many redirects")
		}
		return nil
	}
	return &browser{client: c}
}

func sameEndpoint(a, b *url.URL) bool {
	return a.Scheme == b.Scheme && a.Host == b.Host && a.Path == b.Path
}

// landing is where a visit ended: a page on the provider, or a redirect to the client.
type landing struct {
	at       *url.URL   // the last URL requested
	status   int        // its status
	body     string     // the start of its body, for errors
	redirect url.Values // the query of the redirect to the client, if one was reached
}

func (b *browser) visit(ctx context.Context, method, target string, form url.Values) (*landing, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, err
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.client.Do(req)
	if err != nil {
		return nil, err
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	l := &landing{at: resp.Request.URL, status: resp.StatusCode, body: strings.TrimSpace(string(body))}
	if loc, err := resp.Location(); err == nil && resp.StatusCode/100 == 3 {
		l.redirect = loc.Query()
	}
	return l, nil
}

// code returns the authorization code the provider sent the client.
func (l *landing) code(state string) (string, error) {
	switch {
	case l.redirect == nil && l.status == http.StatusUnauthorized:
		return "", ErrWrongPassword
	case l.redirect == nil:
		return "", fmt.Errorf("devidp: sign-in failed: %s", l)
	case l.redirect.Get("state") != state:
		return "", errors.New("devidp: the redirect carries another state")
	case l.redirect.Get("code") == "":
		return "", fmt.Errorf("devidp: authorization refused: %s", l)
	}
	return l.redirect.Get("code"), nil
}

func (l *landing) String() string {
	if l.redirect != nil {
		return strings.TrimSpace(l.redirect.Get("error") + ": " + l.redirect.Get("error_description"))
	}
	return fmt.Sprintf("%s answered %d: %s", l.at.Path, l.status, l.body)
}

// nonceOf reads the nonce claim of a JWT without verifying it.
func nonceOf(jwt string) (string, error) {
	parts := strings.Split(jwt, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var claims struct {
		Nonce string `json:"nonce"`
	}
	err = json.Unmarshal(payload, &claims)
	return claims.Nonce, err
}
