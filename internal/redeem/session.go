package redeem

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"time"
)

// A sign-in leaves the browser for the identity provider and comes back, possibly to
// another replica. What it must remember (the invitation token, state, nonce and PKCE
// verifier) travels in a cookie sealed with AES-GCM under a key every replica shares:
// the browser can carry it but neither read nor forge it.

const (
	flowCookie = "rolecall_signin"
	csrfCookie = "rolecall_csrf"
	// flowLifetime bounds how long a person may take at the identity provider.
	flowLifetime = 10 * time.Minute
)

// flow is one sign-in in progress.
type flow struct {
	Token    string    `json:"t"`
	Action   string    `json:"a"`
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Expires  time.Time `json:"e"`
}

const (
	actionAccept  = "accept"
	actionDecline = "decline"
)

var errBadSeal = errors.New("the sign-in cookie is missing, altered or expired")

func sealCookie(key []byte, f flow) (string, error) {
	plain, err := json.Marshal(f)
	if err != nil {
		return "", err
	}
	aead, err := newAEAD(key)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(flowCookie))), nil
}

func unsealCookie(key []byte, sealed string, now time.Time) (flow, error) {
	raw, err := base64.RawURLEncoding.DecodeString(sealed)
	// Only the encoding seal writes: the decoder would skip line breaks and the unused low
	// bits of the last character, so altered values would otherwise pass for the original.
	if err != nil || base64.RawURLEncoding.EncodeToString(raw) != sealed {
		return flow{}, errBadSeal
	}
	aead, err := newAEAD(key)
	if err != nil {
		return flow{}, err
	}
	if len(raw) < aead.NonceSize() {
		return flow{}, errBadSeal
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(flowCookie))
	if err != nil {
		return flow{}, errBadSeal
	}
	var f flow
	if err := json.Unmarshal(plain, &f); err != nil || !now.Before(f.Expires) {
		return flow{}, errBadSeal
	}
	return f, nil
}

func newAEAD(key []byte) (cipher.AEAD, error) {
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

// randomString is 32 bytes from the system's CSPRNG, URL-safe.
func randomString() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func equalStrings(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// cookie sets a cookie only this server reads: HttpOnly, Secure on https, and SameSite as
// asked. The sign-in cookie must be Lax: it comes back on the identity provider's redirect.
func (s *Server) cookie(w http.ResponseWriter, name, value, path string, maxAge time.Duration, sameSite http.SameSite) {
	// Secure only on https: development serves plain http on loopback, where a browser
	// would drop a Secure cookie.
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure follows the public URL's scheme
		Name: name, Value: value, Path: path, MaxAge: int(maxAge.Seconds()),
		HttpOnly: true, Secure: s.SignIn.secure(), SameSite: sameSite,
	})
}

func (s *Server) clearCookie(w http.ResponseWriter, name, path string) {
	http.SetCookie(w, &http.Cookie{ //nolint:gosec // Secure follows the public URL's scheme
		Name: name, Value: "", Path: path, MaxAge: -1, HttpOnly: true, Secure: s.SignIn.secure(), SameSite: http.SameSiteLaxMode,
	})
}
