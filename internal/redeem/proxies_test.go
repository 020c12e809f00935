package redeem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/redeem"
)

// behindProxy is a replica whose requests all come from 127.0.0.1, as from an Ingress
// controller; trusted says whether the server is told so.
func behindProxy(trusted bool) *replica {
	return limited(redeem.DefaultLimits, func(s *redeem.Server) {
		if trusted {
			s.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
		}
	})
}

// redeemVia posts a redemption carrying the X-Forwarded-For a proxy would pass on.
func redeemVia(ctx context.Context, r *replica, forwardedFor, credential, tok string) int {
	body, err := json.Marshal(map[string]string{"token": tok})
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/api/v1/redemptions", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set("X-Forwarded-For", forwardedFor)
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Body.Close()).To(Succeed())
	return resp.StatusCode
}

// guess spends a client's failure budget with wrong tokens.
func guess(ctx context.Context, r *replica, forwardedFor func(i int) string) {
	for i := range 10 {
		Expect(redeemVia(ctx, r, forwardedFor(i), person("guesser"), fmt.Sprintf("guess-%d-%s", i, strings.Repeat("x", 20)))).
			To(Equal(http.StatusNotFound))
	}
}

var _ = Describe("Rate limits behind a proxy", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("count each client named by a trusted proxy on its own: a guesser does not lock out the crowd", func(ctx SpecContext) {
		r := behindProxy(true)
		_, tok := issue(ctx, ns)
		guess(ctx, r, func(int) string { return "203.0.113.6" })
		Expect(redeemVia(ctx, r, "203.0.113.6", person("guesser"), tok)).To(Equal(http.StatusTooManyRequests))
		Expect(redeemVia(ctx, r, "198.51.100.7", person("newcomer"), tok)).To(Equal(http.StatusCreated))
	})

	It("cannot be dodged by a client that writes its own X-Forwarded-For entries in front", func(ctx SpecContext) {
		r := behindProxy(true)
		_, tok := issue(ctx, ns)
		// The proxy appends the address it saw; whatever the client sent stays to its left.
		guess(ctx, r, func(i int) string { return fmt.Sprintf("192.0.2.%d, 203.0.113.6", i) })
		Expect(redeemVia(ctx, r, "192.0.2.99, 203.0.113.6", person("guesser"), tok)).To(Equal(http.StatusTooManyRequests))
	})

	It("ignore X-Forwarded-For from a peer that is not a trusted proxy", func(ctx SpecContext) {
		r := behindProxy(false)
		_, tok := issue(ctx, ns)
		guess(ctx, r, func(i int) string { return fmt.Sprintf("192.0.2.%d", i) })
		Expect(redeemVia(ctx, r, "192.0.2.99", person("guesser"), tok)).To(Equal(http.StatusTooManyRequests))
	})

	It("count a whole IPv6 /64 as one client: its other addresses are no fresh budget", func(ctx SpecContext) {
		r := behindProxy(true)
		_, tok := issue(ctx, ns)
		guess(ctx, r, func(i int) string { return fmt.Sprintf("2001:db8:1:2::%x", i+1) })
		Expect(redeemVia(ctx, r, "2001:db8:1:2:ffff:ffff:ffff:fffe", person("guesser"), tok)).To(Equal(http.StatusTooManyRequests))
		Expect(redeemVia(ctx, r, "2001:db8:1:3::1", person("neighbour"), tok)).To(Equal(http.StatusCreated), "the next /64 is someone else")
	})

	It("count an IPv4 client written as IPv4-mapped IPv6 as that IPv4 client", func(ctx SpecContext) {
		r := behindProxy(true)
		_, tok := issue(ctx, ns)
		guess(ctx, r, func(i int) string {
			if i%2 == 0 {
				return "203.0.113.6"
			}
			return "::ffff:203.0.113.6"
		})
		Expect(redeemVia(ctx, r, "::ffff:cb00:7106", person("guesser"), tok)).To(Equal(http.StatusTooManyRequests))
	})
})
