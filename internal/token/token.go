// Package token generates, parses and compares invitation tokens.
//
// Every token rolecall generates has a public ID and a secret. The ID identifies the
// invitation for lookups, rate limits and support; it is recorded in status. The secret is
// never stored anywhere but the token Secret.
//
//   - Link tokens are "<id>.<secret>": 8 lower-case base32 characters of ID (40 bits) and
//     32 of secret (160 bits), safe in a URL path without escaping.
//   - Code tokens are 16 characters of Crockford's base32 in groups of four, such as
//     "7KQ2-M9XD-HT4P-ZR8W" (80 bits). The alphabet has no I, L, O or U, so nothing reads
//     ambiguously; input is case-insensitive, dashes and spaces are ignored, and I, L and O
//     are read as 1, 1 and 0. The first six characters are the ID; the other ten (50 bits)
//     are the secret.
//   - Custom tokens are supplied by the user and are accepted only when EstimateBits says they
//     carry at least MinCustomBits.
//
// Why 80 bits is enough for a code: an attacker who does not know the ID must guess all 80
// bits. With 1,000 clients each allowed one attempt per second for a whole year (3.2e10
// attempts) against 65,536 live codes, the chance of any hit is 3.2e10 * 2^16 / 2^80 ≈ 2e-9,
// well under one in a million. An attacker who knows the ID (it is in status) faces the
// redemption server's per-ID lockout instead, against 50 bits of secret.
package token

import (
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math"
	"net/url"
	"strings"

	"github.com/trustelem/zxcvbn"
)

const (
	linkAlphabet = "abcdefghijklmnopqrstuvwxyz234567"
	codeAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

	linkIDLength     = 8
	linkSecretLength = 32
	codeLength       = 16
	codeIDLength     = 6
	codeGroup        = 4

	// MaxLength bounds any token the server accepts, so parsing cost is bounded too.
	MaxLength = 512
	// MinCustomBits is the least estimated entropy a Custom token must have.
	MinCustomBits = 64
)

// Kind is the shape of a token.
type Kind int

const (
	// Custom is a token of no known shape: compared exactly.
	Custom Kind = iota
	// Link is "<id>.<secret>".
	Link
	// Code is 16 Crockford base32 characters.
	Code
)

// ErrMalformed means a string cannot be a token of any kind.
var ErrMalformed = errors.New("malformed token")

// Token is a parsed or freshly generated token.
type Token struct {
	// Kind is the token's shape.
	Kind Kind
	// ID is the public identifier; empty for Custom tokens.
	ID string
	// Value is the whole token in canonical form: what is stored and compared.
	Value string
}

// NewLink generates a Link token from crypto/rand.
func NewLink() (Token, error) {
	id, err := randomString(linkAlphabet, linkIDLength)
	if err != nil {
		return Token{}, err
	}
	secret, err := randomString(linkAlphabet, linkSecretLength)
	if err != nil {
		return Token{}, err
	}
	return Token{Kind: Link, ID: id, Value: id + "." + secret}, nil
}

// NewCode generates a Code token from crypto/rand.
func NewCode() (Token, error) {
	raw, err := randomString(codeAlphabet, codeLength)
	if err != nil {
		return Token{}, err
	}
	return Token{Kind: Code, ID: raw[:codeIDLength], Value: groupCode(raw)}, nil
}

// NewID generates a public ID for a token that has none of its own (Custom tokens).
func NewID() (string, error) {
	return randomString(linkAlphabet, linkIDLength)
}

// randomString draws n symbols uniformly from a 32-symbol alphabet: a byte masked to five
// bits is uniform because 256 is a multiple of 32.
func randomString(alphabet string, n int) (string, error) {
	buf := make([]byte, n)
	if _, err := rand.Read(buf); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	for i, b := range buf {
		buf[i] = alphabet[b&31]
	}
	return string(buf), nil
}

func groupCode(raw string) string {
	groups := make([]string, 0, len(raw)/codeGroup)
	for i := 0; i < len(raw); i += codeGroup {
		groups = append(groups, raw[i:i+codeGroup])
	}
	return strings.Join(groups, "-")
}

// Parse recognises a token's shape. Link and Code tokens are returned in canonical form
// (a code typed in lower case with spaces still matches); anything else non-empty and
// within MaxLength is a Custom token, compared exactly.
func Parse(s string) (Token, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > MaxLength {
		return Token{}, ErrMalformed
	}
	if t, ok := parseLink(s); ok {
		return t, nil
	}
	if t, ok := parseCode(s); ok {
		return t, nil
	}
	for _, r := range s {
		if r < 0x21 || r == 0x7f {
			return Token{}, ErrMalformed
		}
	}
	return Token{Kind: Custom, Value: s}, nil
}

func parseLink(s string) (Token, bool) {
	id, secret, found := strings.Cut(s, ".")
	if !found || len(id) != linkIDLength || len(secret) != linkSecretLength {
		return Token{}, false
	}
	if !onlyFrom(linkAlphabet, id) || !onlyFrom(linkAlphabet, secret) {
		return Token{}, false
	}
	return Token{Kind: Link, ID: id, Value: s}, true
}

func parseCode(s string) (Token, bool) {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch r {
		case '-', ' ':
			continue
		case 'I', 'L':
			r = '1'
		case 'O':
			r = '0'
		}
		if r > 0x7f || !strings.ContainsRune(codeAlphabet, r) {
			return Token{}, false
		}
		b.WriteRune(r)
	}
	raw := b.String()
	if len(raw) != codeLength {
		return Token{}, false
	}
	return Token{Kind: Code, ID: raw[:codeIDLength], Value: groupCode(raw)}, true
}

func onlyFrom(alphabet, s string) bool {
	for _, r := range s {
		if !strings.ContainsRune(alphabet, r) {
			return false
		}
	}
	return true
}

// Equal compares two canonical tokens in time that does not depend on where they differ.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// EstimateBits is a conservative estimate of a string's entropy in bits: the lower of
// zxcvbn's guess count (which knows words, keyboard walks, repeats and sequences) and the
// string's length times the Shannon entropy of its characters (small alphabets score low).
// It under-rates short random strings, which is the safe direction.
func EstimateBits(s string) float64 {
	if s == "" {
		return 0
	}
	return math.Min(shannonBits(s), math.Log2(zxcvbn.PasswordStrength(s, nil).Guesses))
}

func shannonBits(s string) float64 {
	counts := map[rune]int{}
	n := 0
	for _, r := range s {
		counts[r]++
		n++
	}
	perChar := 0.0
	for _, c := range counts {
		p := float64(c) / float64(n)
		perChar -= p * math.Log2(p)
	}
	return perChar * float64(n)
}

// URL is where a person redeems the token: publicURL + "/i/" + the escaped token.
func URL(publicURL, value string) string {
	return strings.TrimRight(publicURL, "/") + "/i/" + url.PathEscape(value)
}
