package token_test

import (
	"testing"

	"github.com/rolecall/rolecall/internal/token"
)

// FuzzParse holds Parse to its promises on any input: it never panics, canonical forms are
// fixed points (parsing a token's Value gives the same token), and IDs are a prefix of
// what they identify.
func FuzzParse(f *testing.F) {
	link, _ := token.NewLink()
	code, _ := token.NewCode()
	for _, seed := range []string{link.Value, code.Value, "7kq2 m9xd ht4p zr8w", "OIL0-IL0O-1111-0000", "", " ", "a.b", "q3F9xZ/0bK8+Lw2mNcT7vYh1RjUe4sGa", "\x00", "é"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parsed, err := token.Parse(s)
		if err != nil {
			return
		}
		again, err := token.Parse(parsed.Value)
		if err != nil || again != parsed {
			t.Fatalf("Parse(%q) = %+v, but parsing its Value gives %+v, %v", s, parsed, again, err)
		}
		if parsed.Kind != token.Custom && (parsed.ID == "" || !hasPrefixIgnoringDashes(parsed.Value, parsed.ID)) {
			t.Fatalf("Parse(%q): ID %q is not a prefix of %q", s, parsed.ID, parsed.Value)
		}
	})
}

func hasPrefixIgnoringDashes(value, prefix string) bool {
	compact := make([]byte, 0, len(value))
	for i := 0; i < len(value); i++ {
		if value[i] != '-' {
			compact = append(compact, value[i])
		}
	}
	return len(compact) >= len(prefix) && string(compact[:len(prefix)]) == prefix
}
