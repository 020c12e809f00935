package identity_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	. "github.com/onsi/gomega"
)

// testIssuer is a real OpenID Connect issuer on loopback TLS: discovery document, key set,
// and ID tokens signed with its key, so tokens go through the same verification as the
// API server's.
type testIssuer struct {
	server *httptest.Server
	key    *rsa.PrivateKey
	caPEM  string
}

func newTestIssuer() *testIssuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	Expect(err).NotTo(HaveOccurred())
	iss := &testIssuer{key: key}
	mux := http.NewServeMux()
	iss.server = httptest.NewTLSServer(mux)
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(map[string]any{
			"issuer": iss.URL(), "jwks_uri": iss.URL() + "/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "test", Algorithm: "RS256", Use: "sig"}}})
	})
	iss.caPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: iss.server.Certificate().Raw}))
	return iss
}

func (i *testIssuer) URL() string { return i.server.URL }

func (i *testIssuer) Close() { i.server.Close() }

// token signs claims, filling in issuer, audience and lifetime unless given.
func (i *testIssuer) token(claims map[string]any) string {
	return i.tokenWithKey(i.key, claims)
}

func (i *testIssuer) tokenWithKey(key *rsa.PrivateKey, claims map[string]any) string {
	full := map[string]any{"iss": i.URL(), "aud": "rolecall", "sub": "user-1",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		if v == nil {
			delete(full, k)
		} else {
			full[k] = v
		}
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "test"))
	Expect(err).NotTo(HaveOccurred())
	payload, err := json.Marshal(full)
	Expect(err).NotTo(HaveOccurred())
	signed, err := signer.Sign(payload)
	Expect(err).NotTo(HaveOccurred())
	compact, err := signed.CompactSerialize()
	Expect(err).NotTo(HaveOccurred())
	return compact
}
