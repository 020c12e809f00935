package identity_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/identity"
)

var _ = DescribeTable("EmailsMatch compares ASCII letters without case, and nothing else",
	func(a, b string, match bool) {
		Expect(identity.EmailsMatch(a, b)).To(Equal(match))
		Expect(identity.EmailsMatch(b, a)).To(Equal(match), "the comparison is symmetric")
	},
	Entry("the same address", "alice@example.com", "alice@example.com", true),
	Entry("ASCII case in the local part and the domain", "Alice@Example.COM", "alice@example.com", true),
	Entry("the empty string only with itself", "", "", true),
	Entry("a different address", "alice@example.com", "alicia@example.com", false),
	Entry("a prefix", "alice@example.com", "alice@example.co", false),
	Entry("a longer domain", "alice@example.com", "alice@example.com.evil.test", false),
	Entry("KELVIN SIGN for k (Unicode folding would say yes)", "\u212Aate@example.com", "kate@example.com", false),
	Entry("KELVIN SIGN for K", "\u212Aate@example.com", "Kate@example.com", false),
	Entry("LONG S for s (Unicode folding would say yes)", "\u017Fam@example.com", "sam@example.com", false),
	Entry("dotless i for i", "\u0131rene@example.com", "irene@example.com", false),
	Entry("non-ASCII letters compare exactly", "\u00e9lodie@example.com", "\u00e9lodie@example.com", true),
	Entry("non-ASCII letters of another case differ", "\u00c9lodie@example.com", "\u00e9lodie@example.com", false),
	Entry("a NUL byte is not ignored", "alice@example.com\x00", "alice@example.com", false),
	Entry("@ is not a letter: no case to ignore", "alice`example.com", "alice@example.com", false),
)
