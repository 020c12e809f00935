package identity

// EmailsMatch says whether two email addresses are the same for an email-bound invitation:
// equal except for the case of ASCII letters. Unicode case folding is deliberately not
// applied: under it "K" (U+212A KELVIN SIGN) equals "k" and "ſ" (U+017F) equals "s", so an
// identity provider that lets people choose such an address would let them pass for someone
// else. Mail systems compare the domain ASCII-case-insensitively, and internationalized
// addresses stay distinct unless they are byte-for-byte equal apart from ASCII case.
func EmailsMatch(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range len(a) {
		if asciiLower(a[i]) != asciiLower(b[i]) {
			return false
		}
	}
	return true
}

// asciiLower lowers A-Z and leaves every other byte, including those of multi-byte UTF-8
// sequences, as it is.
func asciiLower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + ('a' - 'A')
	}
	return c
}
