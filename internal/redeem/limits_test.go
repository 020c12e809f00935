package redeem_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/time/rate"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/redeem"
)

// limited is a replica of its own (fresh counters) with the given limits.
func limited(limits redeem.Limits) *replica {
	base := replicas[0].server
	server := &redeem.Server{
		Reader: base.Reader, Live: base.Live, HashKey: base.HashKey, Authenticator: people,
		Authorizer: base.Authorizer, Clock: fakeClock, Recorder: base.Recorder, Log: base.Log, Limits: limits,
	}
	r := &replica{server: server, http: httptest.NewServer(server.Handler())}
	DeferCleanup(r.http.Close)
	return r
}

// refusal is the status, code and Retry-After seconds of an answer.
func refusal(a answer) (int, string, int) {
	seconds, _ := strconv.Atoi(a.retryAfter)
	return a.status, fmt.Sprint(a.body["code"]), seconds
}

var _ = Describe("Rate limits", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("slow down a client that keeps guessing, and tell it when to come back", func(ctx SpecContext) {
		r := limited(redeem.DefaultLimits)
		_, tok := issue(ctx, ns)
		guesser := person("guesser")
		for i := range 10 {
			a := redeemAt(ctx, r, guesser, fmt.Sprintf("guess-%d-%s", i, strings.Repeat("x", 20)))
			Expect(a.status).To(Equal(http.StatusNotFound), "guess %d", i)
		}
		status, code, wait := refusal(redeemAt(ctx, r, guesser, tok))
		Expect(status).To(Equal(http.StatusTooManyRequests))
		Expect(code).To(Equal("rate_limited"))
		Expect(wait).To(BeNumerically(">=", 1))

		fakeClock.Step(time.Minute)
		Expect(redeemAt(ctx, r, guesser, tok).status).To(Equal(http.StatusCreated), "after waiting, a right token works")
	})

	It("lock a token ID whose secret keeps failing, even against the right secret, for a while", func(ctx SpecContext) {
		r := limited(redeem.Limits{FailuresPerClient: rate.Inf, ClientBurst: 1, LockAfter: 5, LockWindow: 15 * time.Minute, LockFor: 15 * time.Minute})
		inv, tok := issue(ctx, ns)
		mallory := person("mallory-guesses")
		wrong := inv.Status.TokenID + "." + strings.Repeat("a", 32)
		Expect(wrong).NotTo(Equal(tok))
		for range 5 {
			Expect(redeemAt(ctx, r, mallory, wrong).status).To(Equal(http.StatusNotFound))
		}
		rightful := person("rightful")
		status, code, wait := refusal(redeemAt(ctx, r, rightful, tok))
		Expect(status).To(Equal(http.StatusTooManyRequests))
		Expect(code).To(Equal("locked"))
		Expect(wait).To(BeNumerically(">", 800))
		Expect(latest(ctx, inv).Status.Uses).To(BeZero())

		fakeClock.Step(15*time.Minute + time.Second)
		Expect(redeemAt(ctx, r, rightful, tok).status).To(Equal(http.StatusCreated))
	})

	It("never refuse a crowd redeeming one code at the same moment", func(ctx SpecContext) {
		r := limited(redeem.DefaultLimits)
		_, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.MaxUses = 40
			s.TokenType = invitesv1alpha1.TokenTypeCode
		})
		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range 40 {
			credential := person(fmt.Sprintf("attendee-%d-%s", i, ns))
			wg.Go(func() {
				defer GinkgoRecover()
				if redeemAt(ctx, r, credential, strings.ToLower(tok)).status == http.StatusCreated {
					created.Add(1)
				}
			})
		}
		wg.Wait()
		Expect(created.Load()).To(BeEquivalentTo(40))
	})
})
