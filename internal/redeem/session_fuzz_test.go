package redeem

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// The sealed sign-in cookie travels through the browser: whatever comes back, unseal must
// accept only what seal produced under the same key, unaltered and unexpired.

var (
	sealKey   = bytes.Repeat([]byte{0x5e}, 32)
	otherKey  = bytes.Repeat([]byte{0xa1}, 32)
	sealedNow = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)
	// sealedFlows are the flows the seeds seal; FuzzUnseal may accept nothing else.
	sealedFlows = []flow{
		{Token: "fuzzknwn.abcdefghijklmnopqrstuvwxyz234567", Action: actionAccept, State: "state-1", Nonce: "nonce-1", Verifier: "verifier-1", Expires: sealedNow.Add(flowLifetime)},
		{Token: "7KQ2-M9XD-HT4P-ZR8W", Action: actionDecline, State: "s", Nonce: "n", Verifier: "v", Expires: sealedNow.Add(time.Second)}, //nolint:gosec // a made-up token
		{Expires: sealedNow.Add(time.Hour)},
	}
)

func sameFlow(a, b flow) bool {
	return a.Token == b.Token && a.Action == b.Action && a.State == b.State && a.Nonce == b.Nonce &&
		a.Verifier == b.Verifier && a.Expires.Equal(b.Expires)
}

func mustSeal(tb testing.TB, key []byte, f flow) string {
	tb.Helper()
	sealed, err := sealCookie(key, f)
	if err != nil {
		tb.Fatal(err)
	}
	return sealed
}

// FuzzUnseal hands arbitrary cookie values to unseal. It must not panic; it may accept a
// value only if the value decodes (in canonical base64, so no two cookie values are the
// same seal) to one of the flows sealed under sealKey; what it accepts, it must refuse under
// another key and once the flow has expired. The seeds include sealed values, so the
// fuzzer mutates real ones.
func FuzzUnseal(f *testing.F) {
	for _, fl := range sealedFlows {
		sealed := mustSeal(f, sealKey, fl)
		f.Add(sealed)
		f.Add(sealed[:len(sealed)-1])
		f.Add(sealed + "A")
		f.Add(strings.ToUpper(sealed))
		f.Add(mustSeal(f, otherKey, fl))
	}
	for _, seed := range []string{"", "A", "====", "not base64!", strings.Repeat("A", 16), strings.Repeat("_", 64), "\n\r"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, sealed string) {
		got, err := unsealCookie(sealKey, sealed, sealedNow)
		if err == nil {
			known := false
			for _, fl := range sealedFlows {
				known = known || sameFlow(got, fl)
			}
			if !known {
				t.Fatalf("unseal accepted %q as a flow never sealed: %+v", sealed, got)
			}
			raw, decodeErr := base64.RawURLEncoding.DecodeString(sealed)
			if decodeErr != nil || base64.RawURLEncoding.EncodeToString(raw) != sealed {
				t.Fatalf("unseal accepted %q, which is not the canonical encoding of a seal", sealed)
			}
			if _, err := unsealCookie(sealKey, sealed, got.Expires); err == nil {
				t.Fatalf("unseal accepted %q at its expiry", sealed)
			}
			if _, err := unsealCookie(otherKey, sealed, sealedNow); err == nil {
				t.Fatalf("%q unseals under another key too", sealed)
			}
		} else if err != errBadSeal {
			t.Fatalf("unsealCookie(%q) = %v; want errBadSeal", sealed, err)
		}
	})
}

// FuzzSealRoundTrip seals fuzzer-chosen flows: unsealing gives the flow back before it
// expires and nothing after; another key, any changed byte, or a shorter value is refused.
// Flows hold valid UTF-8 (what reaches them comes through JSON or a parsed URL path):
// encoding/json would replace anything else with U+FFFD.
func FuzzSealRoundTrip(f *testing.F) {
	f.Add("fuzzknwn.abcdefghijklmnopqrstuvwxyz234567", actionAccept, "state", "nonce", "verifier", int64(600), uint16(0), byte(1))
	f.Add("7KQ2-M9XD-HT4P-ZR8W", actionDecline, "", "", "", int64(1), uint16(40), byte(0x80))
	f.Add("", "", "", "", "", int64(0), uint16(7), byte(0xff))
	f.Add("é\"<>&\\", "x", "\u2028", "\x00", strings.Repeat("v", 200), int64(-1), uint16(65535), byte(0x20))
	f.Fuzz(func(t *testing.T, tok, action, state, nonce, verifier string, ttlSeconds int64, at uint16, mask byte) {
		for _, s := range []string{tok, action, state, nonce, verifier} {
			if !utf8.ValidString(s) {
				return
			}
		}
		// Within ±1000 days, so Expires always marshals.
		ttl := time.Duration(ttlSeconds%(1000*24*3600)) * time.Second
		want := flow{Token: tok, Action: action, State: state, Nonce: nonce, Verifier: verifier, Expires: sealedNow.Add(ttl)}
		sealed := mustSeal(t, sealKey, want)

		got, err := unsealCookie(sealKey, sealed, sealedNow)
		switch {
		case ttl > 0 && (err != nil || !sameFlow(got, want)):
			t.Fatalf("unsealCookie(sealCookie(%+v)) = %+v, %v", want, got, err)
		case ttl <= 0 && err == nil:
			t.Fatalf("an expired flow unsealed: %+v", got)
		}
		if _, err := unsealCookie(sealKey, sealed, want.Expires); err == nil {
			t.Fatal("a flow unsealed at its expiry")
		}
		if _, err := unsealCookie(otherKey, sealed, sealedNow); err == nil {
			t.Fatal("a flow unsealed under another key")
		}
		if mask == 0 {
			mask = 1
		}
		changed := []byte(sealed)
		changed[int(at)%len(changed)] ^= mask
		if _, err := unsealCookie(sealKey, string(changed), sealedNow); err == nil {
			t.Fatalf("a flow unsealed with byte %d changed (^%#x)", int(at)%len(changed), mask)
		}
		if _, err := unsealCookie(sealKey, sealed[:int(at)%len(sealed)], sealedNow); err == nil {
			t.Fatalf("a flow unsealed from its first %d bytes", int(at)%len(sealed))
		}
	})
}

func TestSealRoundTrip(t *testing.T) {
	for _, want := range sealedFlows {
		got, err := unsealCookie(sealKey, mustSeal(t, sealKey, want), sealedNow)
		if err != nil || !sameFlow(got, want) {
			t.Errorf("unsealCookie(sealCookie(%+v)) = %+v, %v", want, got, err)
		}
	}
}

func TestSealUsesAFreshNonce(t *testing.T) {
	if a, b := mustSeal(t, sealKey, sealedFlows[0]), mustSeal(t, sealKey, sealedFlows[0]); a == b {
		t.Fatalf("sealing the same flow twice gave the same value %q", a)
	}
}

func TestUnsealRefuses(t *testing.T) {
	f := sealedFlows[0]
	sealed := mustSeal(t, sealKey, f)
	cases := map[string]struct {
		key    []byte
		sealed string
		now    time.Time
	}{
		"another key":            {otherKey, sealed, sealedNow},
		"at its expiry":          {sealKey, sealed, f.Expires},
		"after its expiry":       {sealKey, sealed, f.Expires.Add(time.Nanosecond)},
		"empty":                  {sealKey, "", sealedNow},
		"not base64":             {sealKey, "*" + sealed[1:], sealedNow},
		"padded":                 {sealKey, sealed + "==", sealedNow},
		"with a line break":      {sealKey, sealed[:10] + "\n" + sealed[10:], sealedNow},
		"shorter than a nonce":   {sealKey, base64.RawURLEncoding.EncodeToString(make([]byte, 11)), sealedNow},
		"only a nonce":           {sealKey, base64.RawURLEncoding.EncodeToString(make([]byte, 12)), sealedNow},
		"truncated":              {sealKey, sealed[:len(sealed)-1], sealedNow},
		"sealed for another key": {sealKey, mustSeal(t, otherKey, f), sealedNow},
	}
	// Every byte changed, in seals of three lengths: base64 leaves 0, 2 or 4 bits of the
	// last character unused, and changing those must not go unnoticed either.
	for pad := range 3 {
		padded := f
		padded.State += strings.Repeat("x", pad)
		sealed := mustSeal(t, sealKey, padded)
		for i := range sealed {
			for mask := byte(1); mask != 0; mask <<= 1 {
				changed := []byte(sealed)
				changed[i] ^= mask
				cases[fmt.Sprintf("%d bytes sealed, byte %d changed (^%#x)", len(sealed), i, mask)] = struct {
					key    []byte
					sealed string
					now    time.Time
				}{sealKey, string(changed), sealedNow}
			}
		}
	}
	for name, c := range cases {
		if got, err := unsealCookie(c.key, c.sealed, c.now); err == nil {
			t.Errorf("%s: unseal accepted %q as %+v", name, c.sealed, got)
		}
	}
	if _, err := unsealCookie(make([]byte, 7), sealed, sealedNow); err == nil {
		t.Error("unseal accepted a key of the wrong length")
	}
}
