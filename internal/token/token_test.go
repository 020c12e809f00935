package token_test

import (
	"math"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/token"
)

var (
	linkFormat = regexp.MustCompile(`^[a-z2-7]{8}\.[a-z2-7]{32}$`)
	codeFormat = regexp.MustCompile(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$`)
)

// symbolsSeen collects, per position, the distinct symbols seen over many tokens: with
// uniform randomness every position sees the whole alphabet.
func symbolsSeen(n int, gen func() string) []map[rune]bool {
	var seen []map[rune]bool
	for range n {
		for i, r := range gen() {
			for len(seen) <= i {
				seen = append(seen, map[rune]bool{})
			}
			seen[i][r] = true
		}
	}
	return seen
}

var _ = Describe("Link tokens", func() {
	It("have an 8-character public ID and 160 bits of secret", func() {
		t, err := token.NewLink()
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Value).To(MatchRegexp(linkFormat.String()))
		Expect(t.ID).To(HaveLen(8))
		Expect(t.Value).To(HavePrefix(t.ID + "."))
		secret := strings.TrimPrefix(t.Value, t.ID+".")
		Expect(float64(len(secret)) * math.Log2(32)).To(BeNumerically(">=", 128))
	})

	It("never repeats and uses the whole alphabet in every position", func() {
		values := map[string]bool{}
		seen := symbolsSeen(2000, func() string {
			t, err := token.NewLink()
			Expect(err).NotTo(HaveOccurred())
			Expect(values).NotTo(HaveKey(t.Value))
			values[t.Value] = true
			return strings.ReplaceAll(t.Value, ".", "")
		})
		for i, s := range seen {
			Expect(s).To(HaveLen(32), "position %d", i)
		}
	})

	It("parse back to the same ID and value", func() {
		t, err := token.NewLink()
		Expect(err).NotTo(HaveOccurred())
		parsed, err := token.Parse("  " + t.Value + "\n")
		Expect(err).NotTo(HaveOccurred())
		Expect(parsed).To(Equal(t))
	})
})

var _ = Describe("Code tokens", func() {
	It("are 16 unambiguous characters in groups of four, 80 bits in all", func() {
		t, err := token.NewCode()
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Value).To(MatchRegexp(codeFormat.String()))
		Expect(t.Value).NotTo(ContainSubstring("I"))
		Expect(t.Value).NotTo(ContainSubstring("L"))
		Expect(t.Value).NotTo(ContainSubstring("O"))
		Expect(t.Value).NotTo(ContainSubstring("U"))
		Expect(t.ID).To(Equal(strings.ReplaceAll(t.Value, "-", "")[:6]))
		Expect(16 * math.Log2(32)).To(BeNumerically(">=", 80))
	})

	It("use the whole alphabet in every position", func() {
		seen := symbolsSeen(2000, func() string {
			t, err := token.NewCode()
			Expect(err).NotTo(HaveOccurred())
			return strings.ReplaceAll(t.Value, "-", "")
		})
		Expect(seen).To(HaveLen(16))
		for i, s := range seen {
			Expect(s).To(HaveLen(32), "position %d", i)
		}
	})

	DescribeTable("are read case-insensitively, without caring for dashes or spaces",
		func(typed string) {
			t, err := token.Parse(typed)
			Expect(err).NotTo(HaveOccurred())
			Expect(t.Kind).To(Equal(token.Code))
			Expect(t.Value).To(Equal("7KQ2-M9XD-HT4P-ZR8W"))
			Expect(t.ID).To(Equal("7KQ2M9"))
		},
		Entry("canonical", "7KQ2-M9XD-HT4P-ZR8W"),
		Entry("lower case", "7kq2-m9xd-ht4p-zr8w"),
		Entry("no dashes", "7KQ2M9XDHT4PZR8W"),
		Entry("spaces", "7KQ2 M9XD HT4P ZR8W"),
		Entry("mixed", " 7kq2M9xd-ht4p zr8w "),
	)

	It("read I and L as 1 and O as 0, as Crockford's base32 does", func() {
		t, err := token.Parse("OKQ2-M9XD-HT4P-ZRIL")
		Expect(err).NotTo(HaveOccurred())
		Expect(t.Value).To(Equal("0KQ2-M9XD-HT4P-ZR11"))
	})
})

var _ = Describe("Parsing", func() {
	DescribeTable("rejects strings that cannot be a token",
		func(s string) {
			_, err := token.Parse(s)
			Expect(err).To(MatchError(token.ErrMalformed))
		},
		Entry("empty", ""),
		Entry("only spaces", "   "),
		Entry("too long", strings.Repeat("a", token.MaxLength+1)),
		Entry("inner space", "abc def"),
		Entry("control character", "abc\x00def"),
		Entry("newline inside", "abc\ndef"),
		Entry("DEL", "abc\x7fdef"),
	)

	DescribeTable("treats near-misses of Link and Code as Custom, to be compared exactly",
		func(s string) {
			t, err := token.Parse(s)
			Expect(err).NotTo(HaveOccurred())
			Expect(t.Kind).To(Equal(token.Custom))
			Expect(t.ID).To(BeEmpty())
			Expect(t.Value).To(Equal(s))
		},
		Entry("link with short ID", "abcdefg.abcdefghijklmnopqrstuvwxyz234567"),
		Entry("link with short secret", "abcdefgh.abcdefghijklmnopqrstuvwxyz23456"),
		Entry("link with upper case", "ABCDEFGH.abcdefghijklmnopqrstuvwxyz234567"),
		Entry("link with a digit outside base32", "abcdefg1.abcdefghijklmnopqrstuvwxyz234567"),
		Entry("two dots", "abcdefgh.abcdefghijklmnopqrstuvwxyz2345.7"),
		Entry("code one short", "7KQ2-M9XD-HT4P-ZR8"),
		Entry("code one long", "7KQ2-M9XD-HT4P-ZR8WX"),
		Entry("code with U", "7KQ2-M9XD-HT4P-ZR8U"),
		Entry("code with non-ASCII", "7KQ2-M9XD-HT4P-ZR8é"),
	)
})

var _ = Describe("Comparing", func() {
	It("is exact", func() {
		Expect(token.Equal("abc", "abc")).To(BeTrue())
		Expect(token.Equal("abc", "abd")).To(BeFalse())
		Expect(token.Equal("abc", "abcd")).To(BeFalse())
		Expect(token.Equal("", "a")).To(BeFalse())
	})
})

var _ = Describe("Custom token strength", func() {
	DescribeTable("refuses guessable tokens",
		func(s string) {
			Expect(token.EstimateBits(s)).To(BeNumerically("<", token.MinCustomBits))
		},
		Entry("empty", ""),
		Entry("one character repeated", strings.Repeat("a", 200)),
		Entry("a word", "password"),
		Entry("a short passphrase", "welcome-to-the-team"),
		Entry("two characters alternating", strings.Repeat("ab", 40)),
	)

	DescribeTable("accepts random tokens of reasonable length",
		func(s string) {
			Expect(token.EstimateBits(s)).To(BeNumerically(">=", token.MinCustomBits))
		},
		Entry("32 characters of base64", "q3F9xZ/0bK8+Lw2mNcT7vYh1RjUe4sGa"),
		Entry("a generated link token", "k7qf9xab.mzq4rt7vb2xw5ycdh6jn3pe8sgaf0kl1"),
	)
})

var _ = Describe("Redemption URLs", func() {
	It("join the public URL and the escaped token", func() {
		Expect(token.URL("https://invite.example.com/", "ab cd")).To(Equal("https://invite.example.com/i/ab%20cd"))
		Expect(token.URL("https://invite.example.com", "7KQ2-M9XD-HT4P-ZR8W")).To(Equal("https://invite.example.com/i/7KQ2-M9XD-HT4P-ZR8W"))
	})
})
