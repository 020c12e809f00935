package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/identity"
)

// authenticatorFor builds the JWT authenticator and waits until it has the issuer's keys.
func authenticatorFor(ctx context.Context, iss *testIssuer, cfgErr func() (*identity.JWT, error)) *identity.JWT {
	j, err := cfgErr()
	Expect(err).NotTo(HaveOccurred())
	Eventually(func() bool {
		_, err := j.Authenticate(ctx, iss.token(nil))
		return !errors.Is(err, identity.ErrUnavailable)
	}, 10*time.Second, 50*time.Millisecond).Should(BeTrue(), "the issuer's keys were fetched")
	return j
}

var _ = Describe("ID tokens under kube-apiserver's legacy --oidc-* flags", func() {
	var iss *testIssuer
	BeforeEach(func() {
		iss = newTestIssuer()
		DeferCleanup(iss.Close)
	})

	legacy := func(ctx context.Context, flags identity.LegacyOIDC) *identity.JWT {
		caFile := filepath.Join(GinkgoT().TempDir(), "ca.pem")
		Expect(os.WriteFile(caFile, []byte(iss.caPEM), 0o600)).To(Succeed())
		flags.IssuerURL, flags.ClientID, flags.CAFile = iss.URL(), "rolecall", caFile
		return authenticatorFor(ctx, iss, func() (*identity.JWT, error) {
			cfg, err := flags.Configuration()
			if err != nil {
				return nil, err
			}
			return identity.NewJWT(ctx, cfg)
		})
	}

	DescribeTable("map claims to the username and groups the API server would",
		func(ctx SpecContext, flags identity.LegacyOIDC, claims map[string]any, username string, groups []string) {
			u, err := legacy(ctx, flags).Authenticate(ctx, iss.token(claims))
			Expect(err).NotTo(HaveOccurred())
			Expect(u.Username).To(Equal(strings.ReplaceAll(username, "ISSUER", iss.URL())))
			Expect(u.Groups).To(Equal(groups))
		},
		Entry("sub, prefixed with the issuer by default", identity.LegacyOIDC{}, map[string]any{"sub": "alice"}, "ISSUER#alice", []string(nil)),
		Entry("a prefix of -, meaning none", identity.LegacyOIDC{UsernamePrefix: "-"}, map[string]any{"sub": "alice"}, "alice", []string(nil)),
		Entry("a chosen prefix", identity.LegacyOIDC{UsernamePrefix: "oidc:"}, map[string]any{"sub": "alice"}, "oidc:alice", []string(nil)),
		Entry("email, never prefixed by default", identity.LegacyOIDC{UsernameClaim: "email"},
			map[string]any{"email": "alice@example.com", "email_verified": true}, "alice@example.com", []string(nil)),
		Entry("groups with their prefix", identity.LegacyOIDC{UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:"},
			map[string]any{"sub": "alice", "groups": []string{"dev", "ops"}}, "oidc:alice", []string{"oidc:dev", "oidc:ops"}),
	)

	It("refuses an email username whose email is explicitly unverified, as the API server does", func(ctx SpecContext) {
		_, err := legacy(ctx, identity.LegacyOIDC{UsernameClaim: "email"}).Authenticate(ctx,
			iss.token(map[string]any{"email": "alice@example.com", "email_verified": false}))
		Expect(err).To(MatchError(identity.ErrUnauthenticated))
	})

	It("enforces required claims", func(ctx SpecContext) {
		a := legacy(ctx, identity.LegacyOIDC{UsernamePrefix: "-", RequiredClaims: map[string]string{"hd": "example.com"}})
		_, err := a.Authenticate(ctx, iss.token(map[string]any{"hd": "evil.test"}))
		Expect(err).To(MatchError(identity.ErrUnauthenticated))
		_, err = a.Authenticate(ctx, iss.token(map[string]any{"hd": "example.com"}))
		Expect(err).NotTo(HaveOccurred())
	})

	DescribeTable("refuse tokens the API server would refuse",
		func(ctx SpecContext, claims map[string]any, otherKey bool) {
			a := legacy(ctx, identity.LegacyOIDC{UsernamePrefix: "-"})
			token := iss.token(claims)
			if otherKey {
				key, err := rsa.GenerateKey(rand.Reader, 2048)
				Expect(err).NotTo(HaveOccurred())
				token = iss.tokenWithKey(key, claims)
			}
			_, err := a.Authenticate(ctx, token)
			Expect(err).To(MatchError(identity.ErrUnauthenticated))
		},
		Entry("for another audience", map[string]any{"aud": "someone-else"}, false),
		Entry("from another issuer", map[string]any{"iss": "https://evil.test"}, false),
		Entry("expired", map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}, false),
		Entry("signed with another key", map[string]any{}, true),
		Entry("without a subject", map[string]any{"sub": nil}, false),
	)

	It("refuses what is not a JWT at all", func(ctx SpecContext) {
		_, err := legacy(ctx, identity.LegacyOIDC{}).Authenticate(ctx, "not-a-jwt")
		Expect(err).To(MatchError(identity.ErrUnauthenticated))
	})

	It("reports the email claims, verified only when the token says so", func(ctx SpecContext) {
		a := legacy(ctx, identity.LegacyOIDC{UsernamePrefix: "-"})
		u, err := a.Authenticate(ctx, iss.token(map[string]any{"email": "Alice@Example.COM", "email_verified": true}))
		Expect(err).NotTo(HaveOccurred())
		Expect(u.Email).To(Equal("Alice@Example.COM"))
		Expect(u.EmailVerified).To(BeTrue())
		u, err = a.Authenticate(ctx, iss.token(map[string]any{"email": "bob@example.com"}))
		Expect(err).NotTo(HaveOccurred())
		Expect(u.EmailVerified).To(BeFalse(), "absent email_verified is not verified")
		u, err = a.Authenticate(ctx, iss.token(map[string]any{"email": "eve@example.com", "email_verified": "true"}))
		Expect(err).NotTo(HaveOccurred())
		Expect(u.EmailVerified).To(BeFalse(), "a string is not the boolean true")
	})

	It("needs both the issuer and the client ID", func() {
		_, err := identity.LegacyOIDC{IssuerURL: "https://issuer.example"}.Configuration()
		Expect(err).To(MatchError(ContainSubstring("--oidc-issuer-url and --oidc-client-id are both required")))
	})
})

var _ = Describe("ID tokens under kube-apiserver's --authentication-config", func() {
	var iss *testIssuer
	BeforeEach(func() {
		iss = newTestIssuer()
		DeferCleanup(iss.Close)
	})

	load := func(yaml string) (*identity.JWT, error) {
		file := filepath.Join(GinkgoT().TempDir(), "auth.yaml")
		Expect(os.WriteFile(file, []byte(yaml), 0o600)).To(Succeed())
		cfg, err := identity.LoadAuthenticationConfiguration(file)
		if err != nil {
			return nil, err
		}
		return identity.NewJWT(context.Background(), cfg)
	}

	config := func() string {
		return `apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: ` + iss.URL() + `
    audiences: [rolecall]
    certificateAuthority: |
` + indent(iss.caPEM, "      ") + `
  claimValidationRules:
  - expression: 'claims.?email_verified.orValue(false) == true'
    message: the email must be verified
  claimMappings:
    username:
      expression: '"oidc:" + claims.email'
    groups:
      claim: groups
      prefix: "oidc:"
    uid:
      claim: sub
    extra:
    - key: example.com/tenant
      valueExpression: 'claims.?tenant.orValue("none")'
`
	}

	It("maps claims with CEL exactly as configured", func(ctx SpecContext) {
		a := authenticatorFor(ctx, iss, func() (*identity.JWT, error) { return load(config()) })
		u, err := a.Authenticate(ctx, iss.token(map[string]any{
			"email": "alice@example.com", "email_verified": true, "groups": []string{"dev"}, "tenant": "team-a",
		}))
		Expect(err).NotTo(HaveOccurred())
		Expect(u.Username).To(Equal("oidc:alice@example.com"))
		Expect(u.Groups).To(Equal([]string{"oidc:dev"}))
		Expect(u.UID).To(Equal("user-1"))
		Expect(u.Extra).To(HaveKeyWithValue("example.com/tenant", []string{"team-a"}))
	})

	It("applies the claim validation rules", func(ctx SpecContext) {
		a := authenticatorFor(ctx, iss, func() (*identity.JWT, error) { return load(config()) })
		_, err := a.Authenticate(ctx, iss.token(map[string]any{"email": "alice@example.com", "email_verified": false}))
		Expect(err).To(MatchError(identity.ErrUnauthenticated))
	})

	It("refuses a configuration the API server would refuse, saying why", func() {
		_, err := load(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer: {url: "http://insecure.example", audiences: [rolecall]}
  claimMappings: {username: {claim: sub}}
`)
		Expect(err).To(MatchError(ContainSubstring("jwt[0].issuer.url")))
		Expect(err).To(MatchError(ContainSubstring("https")))
	})
})

func indent(s, prefix string) string {
	return prefix + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n"+prefix)
}
