// Package devidp is a small but real OpenID Connect provider for local development and
// tests, built on github.com/zitadel/oidc's op package. It serves discovery, JWKS, the
// authorization endpoint with a plain HTML login page, the token and userinfo endpoints,
// over TLS on loopback with a certificate authority generated at start.
//
// Only the authorization code flow is offered. Public clients (no secret) must use PKCE
// with S256; confidential clients authenticate with client_secret_basic or
// client_secret_post. ID tokens are signed with RS256 and carry everything kube-apiserver's
// JWT authenticator needs: sub (the username), email and email_verified with the email
// scope, name and preferred_username with the profile scope, groups always, nonce when
// the request had one, and aud set to the client ID.
//
// DemoUsers are three users whose password is their username:
//
//   - alice: alice@example.com, verified, groups [team-a]
//   - bob: bob@example.com, NOT verified, groups [team-a]
//   - carol: carol@example.com, verified, groups [platform]
//
// The op package logs through slog.Default() and ignores loggers handed to it. Start never
// replaces the process's default logger, so a test suite that wants silence sets
// slog.SetDefault itself; Options.Logger only receives this package's own messages.
// Nothing in this package logs a password or a token.
package devidp

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// User is an account that can sign in. Username is also the subject (sub) of its tokens.
type User struct {
	Username      string
	Password      string
	Name          string
	Email         string
	EmailVerified bool
	Groups        []string
}

// Client is a relying party. Without a Secret it is a public client and must use PKCE.
type Client struct {
	ID           string
	Secret       string
	RedirectURIs []string
}

// Options configure Start.
type Options struct {
	// Addr is where to listen, on 127.0.0.1 (the issuer's host) or all interfaces;
	// empty means "127.0.0.1:0", a free port.
	Addr string
	// Dir is where the generated CA is written as ca.crt. Empty writes no file.
	Dir string
	// Users can sign in; nil means DemoUsers.
	Users []User
	// Clients may request tokens; at least one is required.
	Clients []Client
	// ShowDemoHint lists the usernames on the login page.
	ShowDemoHint bool
	// Logger receives the provider's own messages; nil discards them.
	Logger *slog.Logger
}

// Server is a running provider.
type Server struct {
	// Issuer is https://127.0.0.1:<port>, the URL tokens name in iss.
	Issuer string
	// CAFile is Dir/ca.crt, or empty when Options.Dir was empty.
	CAFile string
	// CAPEM is the PEM-encoded CA that signed the serving certificate.
	CAPEM []byte

	authURL, tokenURL string
	http              *http.Server
	closed            chan struct{}
	closeOnce         sync.Once
	closeErr          error
}

// DemoUsers returns alice, bob and carol; see the package documentation.
func DemoUsers() []User {
	return []User{
		{Username: "alice", Password: "alice", Name: "Alice Example", Email: "alice@example.com", EmailVerified: true, Groups: []string{"team-a"}},
		{Username: "bob", Password: "bob", Name: "Bob Example", Email: "bob@example.com", EmailVerified: false, Groups: []string{"team-a"}},
		{Username: "carol", Password: "carol", Name: "Carol Example", Email: "carol@example.com", EmailVerified: true, Groups: []string{"platform"}},
	}
}

// Start listens, generates the CA, serving certificate and signing key, and serves until
// ctx ends or Close is called.
func Start(ctx context.Context, opts Options) (*Server, error) {
	if opts.Users == nil {
		opts.Users = DemoUsers()
	}
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	store, err := newStorage(opts.Users, opts.Clients)
	if err != nil {
		return nil, err
	}
	// The issuer names the port, so listen before building anything that embeds it.
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, err
	}
	s, err := newServer(ln, opts, store)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	go func() {
		if err := s.http.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
			opts.Logger.Error("serving stopped", "error", err)
		}
	}()
	go func() {
		select {
		case <-ctx.Done():
			_ = s.Close()
		case <-s.closed:
		}
	}()
	opts.Logger.Info("OpenID provider started", "issuer", s.Issuer, "caFile", s.CAFile)
	return s, nil
}

func newServer(ln net.Listener, opts Options, store *storage) (*Server, error) {
	addr := ln.Addr().(*net.TCPAddr)
	if !addr.IP.Equal(net.IPv4(127, 0, 0, 1)) && !addr.IP.IsUnspecified() {
		return nil, fmt.Errorf("devidp: the issuer is https://127.0.0.1, but %s does not listen there", addr)
	}
	s := &Server{Issuer: "https://127.0.0.1:" + strconv.Itoa(addr.Port), closed: make(chan struct{})}
	certs, err := newCertificates()
	if err != nil {
		return nil, err
	}
	s.CAPEM = certs.caPEM
	if opts.Dir != "" {
		if s.CAFile, err = writeCA(opts.Dir, certs.caPEM); err != nil {
			return nil, err
		}
	}
	provider, err := newProvider(s.Issuer, store)
	if err != nil {
		return nil, err
	}
	s.authURL = provider.AuthorizationEndpoint().Absolute(s.Issuer)
	s.tokenURL = provider.TokenEndpoint().Absolute(s.Issuer)

	mux := http.NewServeMux()
	mux.Handle(loginPath, newLoginPage(store, s.Issuer, op.AuthCallbackURL(provider), opts))
	mux.Handle("/", provider)
	s.http = &http.Server{
		Handler:           mux,
		TLSConfig:         certs.serverTLS,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

func newProvider(issuer string, store *storage) (*op.Provider, error) {
	config := &op.Config{
		CodeMethodS256:  true,
		AuthMethodPost:  true,
		SupportedScopes: []string{"openid", "email", "profile", groupsScope},
		SupportedClaims: []string{"iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "azp",
			"email", "email_verified", "name", "preferred_username", "groups"},
	}
	// The key only encrypts opaque access tokens, which never outlive the process.
	if _, err := rand.Read(config.CryptoKey[:]); err != nil {
		return nil, err
	}
	return op.NewProvider(config, store, op.StaticIssuer(issuer))
}

func writeCA(dir string, caPEM []byte) (string, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	file := filepath.Join(dir, "ca.crt")
	// World-readable: kube-apiserver may run as another user, and a CA certificate is public.
	if err := os.WriteFile(file, caPEM, 0o644); err != nil { //nolint:gosec // a CA certificate is public
		return "", fmt.Errorf("writing the CA: %w", err)
	}
	return file, nil
}

// Close stops serving at once; in-flight requests are cut off.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		close(s.closed)
		s.closeErr = s.http.Close()
	})
	return s.closeErr
}

// HTTPClient returns a client that trusts the provider's CA and nothing else, for talking
// to the provider (go-oidc's oidc.ClientContext, oauth2.HTTPClient).
func (s *Server) HTTPClient() *http.Client {
	return &http.Client{Transport: s.transport(), Timeout: 30 * time.Second}
}
