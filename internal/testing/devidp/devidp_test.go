package devidp_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/testing/devidp"
)

const (
	publicID        = "rolecall"
	publicCallback  = "http://127.0.0.1:8082/callback"
	backendID       = "backend"
	backendCallback = "https://app.example/callback"
	secret          = "backend-secret"
)

var _ = Describe("The development OpenID provider", func() {
	var srv *devidp.Server

	BeforeEach(func(ctx SpecContext) {
		var err error
		srv, err = devidp.Start(context.WithoutCancel(ctx), devidp.Options{
			Addr: "127.0.0.1:0",
			Dir:  GinkgoT().TempDir(),
			Clients: []devidp.Client{
				{ID: publicID, RedirectURIs: []string{publicCallback}},
				{ID: backendID, Secret: secret, RedirectURIs: []string{backendCallback}},
			},
		})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Close)
	})

	// verify checks a token's signature against the JWKS, its issuer, audience and
	// expiry, as a standard relying party does, and returns its claims.
	verify := func(ctx context.Context, clientID, raw string) map[string]any {
		provider, err := oidc.NewProvider(oidc.ClientContext(ctx, srv.HTTPClient()), srv.Issuer)
		Expect(err).NotTo(HaveOccurred())
		token, err := provider.Verifier(&oidc.Config{ClientID: clientID}).Verify(oidc.ClientContext(ctx, srv.HTTPClient()), raw)
		Expect(err).NotTo(HaveOccurred())
		var claims map[string]any
		Expect(token.Claims(&claims)).To(Succeed())
		return claims
	}

	It("serves discovery over TLS that only its own CA vouches for", func(ctx SpecContext) {
		Expect(srv.Issuer).To(MatchRegexp(`^https://127\.0\.0\.1:\d+$`))
		Expect(os.ReadFile(srv.CAFile)).To(Equal(srv.CAPEM))
		Expect(filepath.Base(srv.CAFile)).To(Equal("ca.crt"))

		var discovery struct {
			Issuer          string   `json:"issuer"`
			JWKS            string   `json:"jwks_uri"`
			Authorization   string   `json:"authorization_endpoint"`
			Token           string   `json:"token_endpoint"`
			ChallengeMethod []string `json:"code_challenge_methods_supported"`
			AuthMethods     []string `json:"token_endpoint_auth_methods_supported"`
			Signing         []string `json:"id_token_signing_alg_values_supported"`
		}
		body := get(ctx, srv.HTTPClient(), srv.Issuer+"/.well-known/openid-configuration")
		Expect(json.Unmarshal([]byte(body), &discovery)).To(Succeed())
		Expect(discovery.Issuer).To(Equal(srv.Issuer))
		Expect(discovery.JWKS).To(HavePrefix(srv.Issuer + "/"))
		Expect(discovery.Authorization).To(HavePrefix(srv.Issuer + "/"))
		Expect(discovery.Token).To(HavePrefix(srv.Issuer + "/"))
		Expect(discovery.ChallengeMethod).To(ContainElement("S256"))
		Expect(discovery.AuthMethods).To(ContainElements("none", "client_secret_basic", "client_secret_post"))
		Expect(discovery.Signing).To(ConsistOf("RS256"))
		Expect(get(ctx, srv.HTTPClient(), discovery.JWKS)).To(ContainSubstring(`"RS256"`))

		req, err := http.NewRequestWithContext(ctx, http.MethodGet, srv.Issuer+"/.well-known/openid-configuration", nil)
		Expect(err).NotTo(HaveOccurred())
		_, err = (&http.Client{}).Do(req)
		Expect(err).To(MatchError(ContainSubstring("certificate")), "the system roots do not trust it")
	})

	It("signs alice in and issues her a genuine ID token with the claims Kubernetes reads", func(ctx SpecContext) {
		raw, err := srv.Login(ctx, publicID, "", publicCallback, "alice", "alice")
		Expect(err).NotTo(HaveOccurred())
		claims := verify(ctx, publicID, raw)
		Expect(claims).To(HaveKeyWithValue("iss", srv.Issuer))
		Expect(claims).To(HaveKeyWithValue("sub", "alice"))
		Expect(claims).To(HaveKeyWithValue("aud", []any{publicID}))
		Expect(claims).To(HaveKeyWithValue("email", "alice@example.com"))
		Expect(claims).To(HaveKeyWithValue("email_verified", true))
		Expect(claims).To(HaveKeyWithValue("name", "Alice Example"))
		Expect(claims).To(HaveKeyWithValue("preferred_username", "alice"))
		Expect(claims).To(HaveKeyWithValue("groups", []any{"team-a"}))
		Expect(claims).To(HaveKeyWithValue("nonce", Not(BeEmpty())))
	})

	It("returns the nonce of the request in the ID token", func(ctx SpecContext) {
		raw, err := srv.LoginWithNonce(ctx, publicID, "", publicCallback, "carol", "carol", "n-0S6_WzA2Mj")
		Expect(err).NotTo(HaveOccurred())
		claims := verify(ctx, publicID, raw)
		Expect(claims).To(HaveKeyWithValue("nonce", "n-0S6_WzA2Mj"))
		Expect(claims).To(HaveKeyWithValue("groups", []any{"platform"}))
	})

	It("says email_verified false for bob rather than leaving it out", func(ctx SpecContext) {
		raw, err := srv.Login(ctx, publicID, "", publicCallback, "bob", "bob")
		Expect(err).NotTo(HaveOccurred())
		Expect(verify(ctx, publicID, raw)).To(HaveKeyWithValue("email_verified", false))
	})

	It("signs in a confidential client with its secret, and only with it", func(ctx SpecContext) {
		raw, err := srv.Login(ctx, backendID, secret, backendCallback, "alice", "alice")
		Expect(err).NotTo(HaveOccurred())
		Expect(verify(ctx, backendID, raw)).To(HaveKeyWithValue("aud", []any{backendID}))

		_, err = srv.Login(ctx, backendID, "wrong", backendCallback, "alice", "alice")
		Expect(err).To(MatchError(ContainSubstring("invalid_client")))
	})

	It("refuses a wrong password, showing the form again with an error", func(ctx SpecContext) {
		_, err := srv.Login(ctx, publicID, "", publicCallback, "alice", "bob")
		Expect(err).To(MatchError(devidp.ErrWrongPassword))
		_, err = srv.Login(ctx, publicID, "", publicCallback, "mallory", "mallory")
		Expect(err).To(MatchError(devidp.ErrWrongPassword))

		c := noRedirects(srv)
		loc := redirect(ctx, c, authorizeURL(srv, url.Values{"code_challenge": {"E9Melhoa2OwvFrEMTJguCKUvLjO1uZ2VAXYc-BCNMCM"},
			"code_challenge_method": {"S256"}}))
		Expect(loc.Path).To(Equal("/login"))
		form := get(ctx, c, loc.String())
		Expect(form).To(ContainSubstring(`id="username" name="username"`))
		Expect(form).To(ContainSubstring(`id="password" name="password"`))
		Expect(form).To(ContainSubstring(`id="sign-in"`))
		Expect(form).NotTo(ContainSubstring("alice"), "no hint unless asked for")

		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.Issuer+"/login",
			strings.NewReader(url.Values{"id": {loc.Query().Get("id")}, "username": {"alice"}, "password": {"nope"}}.Encode()))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := c.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))
		page, err := io.ReadAll(resp.Body)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(page)).To(ContainSubstring("Wrong username or password."))
		Expect(string(page)).To(ContainSubstring(`id="sign-in"`))
		Expect(string(page)).NotTo(ContainSubstring("nope"))
	})

	It("refuses a redirect URI the client did not register", func(ctx SpecContext) {
		_, err := srv.Login(ctx, publicID, "", "http://127.0.0.1:8082/elsewhere", "alice", "alice")
		Expect(err).To(MatchError(ContainSubstring("redirect_uri")))
	})

	It("refuses a public client without PKCE, or with the plain method", func(ctx SpecContext) {
		c := noRedirects(srv)
		for _, pkce := range []url.Values{{}, {"code_challenge": {"abc"}, "code_challenge_method": {"plain"}}} {
			loc := redirect(ctx, c, authorizeURL(srv, pkce))
			Expect(loc.Scheme + "://" + loc.Host + loc.Path).To(Equal(publicCallback))
			Expect(loc.Query().Get("error")).To(Equal("invalid_request"))
			Expect(loc.Query().Get("error_description")).To(ContainSubstring("PKCE"))
			Expect(loc.Query().Get("state")).To(Equal("xyz"))
		}
	})

	It("lists the users on the login page when asked to", func(ctx SpecContext) {
		hinted, err := devidp.Start(ctx, devidp.Options{ShowDemoHint: true,
			Clients: []devidp.Client{{ID: publicID, RedirectURIs: []string{publicCallback}}}})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(hinted.Close)
		Expect(hinted.CAFile).To(BeEmpty(), "no Dir, no file")
		loc := redirect(ctx, noRedirects(hinted), authorizeURL(hinted, url.Values{
			"code_challenge": {"E9Melhoa2OwvFrEMTJguCKUvLjO1uZ2VAXYc-BCNMCM"}, "code_challenge_method": {"S256"}}))
		page := get(ctx, hinted.HTTPClient(), loc.String())
		Expect(page).To(ContainSubstring("<code>alice</code>, <code>bob</code>, <code>carol</code>"))
		Expect(page).To(ContainSubstring("Each password is the username."))
	})

	It("stops serving when its context ends", func(ctx SpecContext) {
		short, cancel := context.WithCancel(ctx)
		s, err := devidp.Start(short, devidp.Options{Clients: []devidp.Client{{ID: publicID, RedirectURIs: []string{publicCallback}}}})
		Expect(err).NotTo(HaveOccurred())
		Expect(get(ctx, s.HTTPClient(), s.Issuer+"/.well-known/openid-configuration")).NotTo(BeEmpty())
		cancel()
		Eventually(func() error {
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.Issuer+"/.well-known/openid-configuration", nil)
			Expect(err).NotTo(HaveOccurred())
			resp, err := s.HTTPClient().Do(req)
			if err == nil {
				_ = resp.Body.Close()
			}
			return err
		}).Should(HaveOccurred())
		Expect(s.Close()).To(Succeed(), "closing again is harmless")
	})

	Describe("as kube-apiserver sees its tokens", func() {
		authenticator := func(ctx context.Context, config string) *identity.JWT {
			file := filepath.Join(GinkgoT().TempDir(), "authentication.yaml")
			Expect(os.WriteFile(file, []byte(config), 0o600)).To(Succeed())
			cfg, err := identity.LoadAuthenticationConfiguration(file)
			Expect(err).NotTo(HaveOccurred())
			a, err := identity.NewJWT(ctx, cfg)
			Expect(err).NotTo(HaveOccurred())
			return a
		}
		// authenticate retries while the authenticator is still fetching the keys.
		authenticate := func(ctx context.Context, a *identity.JWT, token string) (identity.User, error) {
			var u identity.User
			var err error
			Eventually(func() bool {
				u, err = a.Authenticate(ctx, token)
				return errors.Is(err, identity.ErrUnavailable)
			}, 10*time.Second, 50*time.Millisecond).Should(BeFalse())
			return u, err
		}
		config := func(username string) string {
			return `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: ` + srv.Issuer + `
    audiences: [` + publicID + `]
    certificateAuthority: |
      ` + strings.ReplaceAll(strings.TrimSpace(string(srv.CAPEM)), "\n", "\n      ") + `
  claimMappings:
    username:
      claim: ` + username + `
      prefix: "oidc:"
    groups:
      claim: groups
      prefix: "oidc:"
`
		}

		It("maps alice to oidc:alice in oidc:team-a", func(ctx SpecContext) {
			raw, err := srv.Login(ctx, publicID, "", publicCallback, "alice", "alice")
			Expect(err).NotTo(HaveOccurred())
			u, err := authenticate(ctx, authenticator(ctx, config("sub")), raw)
			Expect(err).NotTo(HaveOccurred())
			Expect(u.Username).To(Equal("oidc:alice"))
			Expect(u.Groups).To(ContainElement("oidc:team-a"))
			Expect(u.Email).To(Equal("alice@example.com"))
			Expect(u.EmailVerified).To(BeTrue())
		})

		It("refuses bob's unverified email as a username, but not alice's", func(ctx SpecContext) {
			a := authenticator(ctx, config("email"))
			bob, err := srv.Login(ctx, publicID, "", publicCallback, "bob", "bob")
			Expect(err).NotTo(HaveOccurred())
			_, err = authenticate(ctx, a, bob)
			Expect(err).To(MatchError(identity.ErrUnauthenticated))

			alice, err := srv.Login(ctx, publicID, "", publicCallback, "alice", "alice")
			Expect(err).NotTo(HaveOccurred())
			u, err := authenticate(ctx, a, alice)
			Expect(err).NotTo(HaveOccurred())
			Expect(u.Username).To(Equal("oidc:alice@example.com"))
		})

		It("accepts the CA file as --oidc-ca-file", func(ctx SpecContext) {
			cfg, err := identity.LegacyOIDC{IssuerURL: srv.Issuer, ClientID: publicID, CAFile: srv.CAFile,
				UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:"}.Configuration()
			Expect(err).NotTo(HaveOccurred())
			a, err := identity.NewJWT(ctx, cfg)
			Expect(err).NotTo(HaveOccurred())
			raw, err := srv.Login(ctx, publicID, "", publicCallback, "carol", "carol")
			Expect(err).NotTo(HaveOccurred())
			u, err := authenticate(ctx, a, raw)
			Expect(err).NotTo(HaveOccurred())
			Expect(u.Username).To(Equal("oidc:carol"))
			Expect(u.Groups).To(Equal([]string{"oidc:platform"}))
		})
	})
})

// authorizeURL asks for a code for the public client, with extra parameters.
func authorizeURL(srv *devidp.Server, extra url.Values) string {
	q := url.Values{"client_id": {publicID}, "redirect_uri": {publicCallback}, "response_type": {"code"},
		"scope": {"openid email"}, "state": {"xyz"}}
	for k, v := range extra {
		q[k] = v
	}
	return srv.Issuer + "/authorize?" + q.Encode()
}

func noRedirects(srv *devidp.Server) *http.Client {
	c := srv.HTTPClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return c
}

// redirect returns where a GET redirects to, resolved against the request.
func redirect(ctx context.Context, c *http.Client, target string) *url.URL {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	Expect(resp.StatusCode).To(Equal(http.StatusFound))
	loc, err := resp.Location()
	Expect(err).NotTo(HaveOccurred())
	return loc
}

func get(ctx context.Context, c *http.Client, target string) string {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	Expect(resp.StatusCode).To(Equal(http.StatusOK))
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return string(body)
}
