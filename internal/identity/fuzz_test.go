package identity_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
	apiserver "k8s.io/apiserver/pkg/apis/apiserver"

	"github.com/rolecall/rolecall/internal/identity"
)

// The fuzz targets share one issuer and three authenticators per process: building them
// (an RSA key, a TLS server, a key fetch) takes far longer than checking a token.
//
//   - byPrefix maps sub to "oidc:<sub>" and the groups claim to "oidc:<group>", like
//     --oidc-username-prefix=oidc: --oidc-groups-claim=groups --oidc-groups-prefix=oidc:.
//   - byEmail maps email to "email:<email>", refusing an email that says it is unverified.
//   - byCEL maps claims with CEL and requires email_verified, like --authentication-config.
type fuzzIdentities struct {
	iss      *testIssuer
	byPrefix *identity.JWT
	byEmail  *identity.JWT
	byCEL    *identity.JWT
}

func (f *fuzzIdentities) all() map[string]*identity.JWT {
	return map[string]*identity.JWT{"byPrefix": f.byPrefix, "byEmail": f.byEmail, "byCEL": f.byCEL}
}

func newFuzzIdentities(f *testing.F) *fuzzIdentities {
	f.Helper()
	// testIssuer asserts with Gomega; outside the Ginkgo suite its failures go to f.
	RegisterTestingT(f)
	iss := newTestIssuer()
	f.Cleanup(iss.Close)
	ids := &fuzzIdentities{iss: iss}
	caFile := filepath.Join(f.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, []byte(iss.caPEM), 0o600); err != nil {
		f.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f.Cleanup(cancel)
	legacy := func(flags identity.LegacyOIDC) *identity.JWT {
		flags.IssuerURL, flags.ClientID, flags.CAFile = iss.URL(), "rolecall", caFile
		cfg, err := flags.Configuration()
		if err != nil {
			f.Fatal(err)
		}
		return fuzzReady(ctx, f, iss, cfg)
	}
	ids.byPrefix = legacy(identity.LegacyOIDC{UsernamePrefix: "oidc:", GroupsClaim: "groups", GroupsPrefix: "oidc:"})
	ids.byEmail = legacy(identity.LegacyOIDC{UsernameClaim: "email", UsernamePrefix: "email:"})

	file := filepath.Join(f.TempDir(), "auth.yaml")
	if err := os.WriteFile(file, []byte(`apiVersion: apiserver.config.k8s.io/v1
kind: AuthenticationConfiguration
jwt:
- issuer:
    url: `+iss.URL()+`
    audiences: [rolecall]
    certificateAuthority: |
`+indent(iss.caPEM, "      ")+`
  claimValidationRules:
  - expression: 'claims.?email_verified.orValue(false) == true'
    message: the email must be verified
  claimMappings:
    username:
      expression: '"cel:" + claims.email'
    groups:
      expression: 'claims.?groups.orValue([])'
    uid:
      claim: sub
`), 0o600); err != nil {
		f.Fatal(err)
	}
	cfg, err := identity.LoadAuthenticationConfiguration(file)
	if err != nil {
		f.Fatal(err)
	}
	ids.byCEL = fuzzReady(ctx, f, iss, cfg)
	return ids
}

// fuzzReady builds the authenticator and waits until it has fetched the issuer's keys.
func fuzzReady(ctx context.Context, f *testing.F, iss *testIssuer, cfg *apiserver.AuthenticationConfiguration) *identity.JWT {
	f.Helper()
	j, err := identity.NewJWT(ctx, cfg)
	if err != nil {
		f.Fatal(err)
	}
	probe, err := signClaims(iss.key, iss.URL(), map[string]any{"email": "probe@example.com", "email_verified": true})
	if err != nil {
		f.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, err := j.Authenticate(ctx, probe); !errors.Is(err, identity.ErrUnavailable) {
			return j
		}
	}
	f.Fatal("the authenticator did not fetch the issuer's keys within 10s")
	return nil
}

// signClaims signs an ID token like testIssuer.token, but returns errors instead of
// asserting, so it can be called from a fuzz function. A nil claim removes a default.
func signClaims(key *rsa.PrivateKey, issuer string, claims map[string]any) (string, error) {
	full := map[string]any{"iss": issuer, "aud": "rolecall", "sub": "user-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(full, k)
		} else {
			full[k] = v
		}
	}
	payload, err := json.Marshal(full)
	if err != nil {
		return "", err
	}
	return signPayload(key, payload)
}

func signPayload(key *rsa.PrivateKey, payload []byte) (string, error) {
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "test"))
	if err != nil {
		return "", err
	}
	signed, err := signer.Sign(payload)
	if err != nil {
		return "", err
	}
	return signed.CompactSerialize()
}

// signingInput is what the signature covers: the encoded header and payload.
func signingInput(jwt string) string {
	if i := strings.LastIndexByte(jwt, '.'); i >= 0 {
		return jwt[:i]
	}
	return jwt
}

// FuzzAuthenticate hands arbitrary credentials to the JWT authenticators. Whatever the
// input, Authenticate must not panic, must not report the issuer unavailable (its keys are
// loaded), and must refuse with ErrUnauthenticated, unless the credential's header and
// payload are exactly those of a token this process signed.
func FuzzAuthenticate(f *testing.F) {
	ids := newFuzzIdentities(f)
	signed := map[string]bool{}
	sign := func(claims map[string]any) string {
		tok, err := signClaims(ids.iss.key, ids.iss.URL(), claims)
		if err != nil {
			f.Fatal(err)
		}
		signed[signingInput(tok)] = true
		return tok
	}
	valid := sign(map[string]any{"email": "alice@example.com", "email_verified": true, "groups": []string{"dev"}})
	expired := sign(map[string]any{"exp": time.Now().Add(-time.Hour).Unix()})
	parts := strings.Split(valid, ".")
	b64 := base64.RawURLEncoding.EncodeToString
	for _, seed := range []string{
		valid, expired, "", ".", "..", "a.b.c", "not-a-jwt", "Bearer " + valid,
		parts[0] + "." + parts[1] + ".", parts[0] + "." + parts[1] + "." + parts[2] + "A",
		// An unsigned token, and one whose alg is the authenticator's not-initialized error:
		// the error quoting it once passed for an unavailable issuer (503, not 401).
		b64([]byte(`{"alg":"none"}`)) + "." + parts[1] + ".",
		b64([]byte(`{"alg":"authenticator not initialized","kid":"test"}`)) + "." + parts[1] + "." + parts[2],
		// A payload that is not JSON, and one naming this issuer with nothing else.
		parts[0] + "." + b64([]byte(`{"iss":`)) + "." + parts[2],
		parts[0] + "." + b64([]byte(`{"iss":"`+ids.iss.URL()+`"}`)) + "." + parts[2],
	} {
		f.Add(seed)
	}
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, credential string) {
		for name, j := range ids.all() {
			u, err := j.Authenticate(ctx, credential)
			if err == nil {
				if !signed[signingInput(credential)] {
					t.Fatalf("%s accepted a credential this process never signed: %q as %+v", name, credential, u)
				}
				if u.Username == "" {
					t.Fatalf("%s accepted %q with an empty username", name, credential)
				}
				continue
			}
			if !errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrUnavailable) {
				t.Fatalf("%s: Authenticate(%q) = %v; want only ErrUnauthenticated", name, credential, err)
			}
			if u.Username != "" || u.Groups != nil || u.Email != "" {
				t.Fatalf("%s: Authenticate(%q) failed but returned a user %+v", name, credential, u)
			}
		}
	})
}

// FuzzClaimMapping signs fuzzer-chosen claims with the issuer's key and checks that every
// user an authenticator returns is exactly what its mapping promises: the configured
// prefixes on username and groups, the email claim as is, and EmailVerified only when
// email_verified is the boolean true.
//
// verified picks email_verified: 0 absent, 1 true, 2 false, 3 the string verifiedText,
// 4 null. groupsKind picks groups: 0 absent, 1 an array of groupsText split on ",", 2 the
// string groupsText, 3 a number, 4 null.
func FuzzClaimMapping(f *testing.F) {
	ids := newFuzzIdentities(f)
	f.Add("alice", "alice@example.com", uint8(1), "", uint8(1), "dev,ops", false)
	f.Add("bob", "Bob@Example.COM", uint8(0), "", uint8(2), "admins", false)
	f.Add("eve", "eve@example.com", uint8(3), "true", uint8(0), "", false)
	f.Add("mallory", "mallory@example.com", uint8(2), "", uint8(3), "", false)
	f.Add("", "", uint8(4), "", uint8(4), "", true)
	f.Add("system:admin", "root@localhost", uint8(1), "", uint8(1), "system:masters", false)
	f.Add("a\x00b", "\xff@example.com", uint8(1), "", uint8(1), ",,", false)
	f.Add(strings.Repeat("x", 300), "x@"+strings.Repeat("y", 300), uint8(1), "", uint8(1), strings.Repeat("g,", 100), false)
	ctx := context.Background()
	f.Fuzz(func(t *testing.T, sub, email string, verified uint8, verifiedText string, groupsKind uint8, groupsText string, omitSub bool) {
		claims := map[string]any{"sub": sub}
		if omitSub {
			claims["sub"] = nil
		}
		if email != "" {
			claims["email"] = email
		}
		switch verified % 5 {
		case 1:
			claims["email_verified"] = true
		case 2:
			claims["email_verified"] = false
		case 3:
			claims["email_verified"] = verifiedText
		case 4:
			claims["email_verified"] = json.RawMessage("null")
		}
		var groups []string
		switch groupsKind % 5 {
		case 1:
			groups = strings.Split(groupsText, ",")
			claims["groups"] = groups
		case 2:
			groups = []string{groupsText}
			claims["groups"] = groupsText
		case 3:
			claims["groups"] = 42
		case 4:
			claims["groups"] = json.RawMessage("null")
		}
		tok, err := signClaims(ids.iss.key, ids.iss.URL(), claims)
		if err != nil {
			t.Fatal(err)
		}
		// What the signed JSON says, after encoding/json has replaced invalid UTF-8.
		var said struct {
			Sub           *string         `json:"sub"`
			Email         *string         `json:"email"`
			EmailVerified json.RawMessage `json:"email_verified"`
		}
		if err := json.Unmarshal(payloadOf(t, tok), &said); err != nil {
			t.Fatal(err)
		}
		for i := range groups {
			groups[i] = jsonString(t, groups[i])
		}
		verifiedTrue := string(said.EmailVerified) == "true"

		for name, j := range ids.all() {
			u, err := j.Authenticate(ctx, tok)
			if err != nil {
				if !errors.Is(err, identity.ErrUnauthenticated) || errors.Is(err, identity.ErrUnavailable) {
					t.Fatalf("%s: Authenticate(%v) = %v; want only ErrUnauthenticated", name, claims, err)
				}
				continue
			}
			if u.EmailVerified != verifiedTrue {
				t.Fatalf("%s: EmailVerified = %v for email_verified %s", name, u.EmailVerified, said.EmailVerified)
			}
			if (said.Email == nil && u.Email != "") || (said.Email != nil && u.Email != *said.Email) {
				t.Fatalf("%s: Email = %q for the claim %v", name, u.Email, said.Email)
			}
			switch name {
			case "byPrefix":
				if said.Sub == nil || u.Username != "oidc:"+*said.Sub {
					t.Fatalf("byPrefix: username %q for sub %v", u.Username, said.Sub)
				}
				if want := prefixed("oidc:", groups); !slices.Equal(u.Groups, want) {
					t.Fatalf("byPrefix: groups %q for %v; want %q", u.Groups, claims["groups"], want)
				}
			case "byEmail":
				if said.Email == nil || u.Username != "email:"+*said.Email {
					t.Fatalf("byEmail: username %q for email %v", u.Username, said.Email)
				}
				if len(said.EmailVerified) > 0 && !verifiedTrue {
					t.Fatalf("byEmail: accepted %q although email_verified is %s", u.Username, said.EmailVerified)
				}
			case "byCEL":
				if said.Email == nil || u.Username != "cel:"+*said.Email || !verifiedTrue {
					t.Fatalf("byCEL: username %q for email %v, email_verified %s", u.Username, said.Email, said.EmailVerified)
				}
			}
		}
	})
}

func payloadOf(t *testing.T, jwt string) []byte {
	t.Helper()
	parts := strings.Split(jwt, ".")
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// jsonString is s as a JSON round trip gives it back.
func jsonString(t *testing.T, s string) string {
	t.Helper()
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	var back string
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	return back
}

func prefixed(prefix string, groups []string) []string {
	if groups == nil {
		return nil
	}
	out := make([]string, len(groups))
	for i, g := range groups {
		out[i] = prefix + g
	}
	return out
}

// TestUnreachableIssuerIsUnavailable pins down the other side of FuzzAuthenticate's
// property: until the issuer's keys arrive, a token from it is unavailable, not refused.
func TestUnreachableIssuerIsUnavailable(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing listens on port 1: the keys never arrive.
	const issuer = "https://127.0.0.1:1"
	cfg, err := identity.LegacyOIDC{IssuerURL: issuer, ClientID: "rolecall", UsernamePrefix: "-"}.Configuration()
	if err != nil {
		t.Fatal(err)
	}
	j, err := identity.NewJWT(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := signClaims(key, issuer, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.Authenticate(t.Context(), tok); !errors.Is(err, identity.ErrUnavailable) {
		t.Fatalf("Authenticate = %v; want ErrUnavailable", err)
	}
}
