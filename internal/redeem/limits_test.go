package redeem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/redeem"
)

// limited is a replica of its own (fresh counters) with the given limits; configure
// changes anything else about it before it starts serving.
func limited(limits redeem.Limits, configure ...func(*redeem.Server)) *replica {
	base := replicas[0].server
	server := &redeem.Server{
		Reader: base.Reader, Live: base.Live, Sealer: base.Sealer, Authenticator: people,
		Authorizer: base.Authorizer, Clock: fakeClock, Recorder: base.Recorder, Log: base.Log, Limits: limits,
	}
	for _, c := range configure {
		c(server)
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

// from is an HTTP client whose connections come from the given loopback address: a
// client of its own, as another machine on the internet would be.
func from(address string) *http.Client {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(address)}}
	return &http.Client{
		Transport:     &http.Transport{DialContext: dialer.DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// redeemFrom posts a redemption from a client; credential may be empty (none sent).
func redeemFrom(ctx context.Context, c *http.Client, r *replica, credential, tok string) answer {
	GinkgoHelper()
	body, err := json.Marshal(map[string]string{"token": tok})
	Expect(err).NotTo(HaveOccurred())
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/api/v1/redemptions", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	a := answer{status: resp.StatusCode, body: map[string]any{}, retryAfter: resp.Header.Get("Retry-After")}
	Expect(json.Unmarshal(raw, &a.body)).To(Succeed(), string(raw))
	return a
}

// openFrom fetches a landing page from a client, with no credential at all.
func openFrom(ctx context.Context, c *http.Client, r *replica, tok string) int {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.http.URL+"/i/"+tok, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Body.Close()).To(Succeed())
	return resp.StatusCode
}

// wrongSecret is the invitation's public token ID with the i-th made-up secret, well
// formed: what anyone who may read the Invitation can send.
func wrongSecret(inv *invitesv1alpha1.Invitation, i int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyz234567"
	secret := []byte(strings.Repeat("a", 32))
	for p := len(secret) - 1; i > 0; p, i = p-1, i/32 {
		secret[p] = alphabet[i%32]
	}
	return inv.Status.TokenID + "." + string(secret)
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

	Context("when someone without any credential sends wrong secrets for a known token ID", func() {
		It("lock that client out of the ID, and never the invited person", func(ctx SpecContext) {
			r := limited(redeem.DefaultLimits)
			inv, tok := issue(ctx, ns)
			openEventually(ctx, replicas[0], tok)
			mallory := from("127.0.0.66")
			// The attack that used to lock the invitee out for 15 minutes: wrong secrets
			// for the ID in status, by GET (as a link preview would) and by POST, with no
			// credential at all.
			var statuses []int
			for i := range 15 {
				statuses = append(statuses, openFrom(ctx, mallory, r, wrongSecret(inv, i)))
				statuses = append(statuses, redeemFrom(ctx, mallory, r, "", wrongSecret(inv, 100+i)).status)
			}
			Expect(statuses[0]).To(Equal(http.StatusNotFound))
			Expect(statuses[1]).To(Equal(http.StatusUnauthorized))
			Expect(statuses).NotTo(ContainElement(BeElementOf(http.StatusOK, http.StatusCreated)))
			Expect(statuses[len(statuses)-10:]).To(HaveEach(Equal(http.StatusTooManyRequests)), "the guesser is stopped: %v", statuses)
			status, _, wait := refusal(redeemFrom(ctx, mallory, r, person("mallory"), tok))
			Expect(status).To(Equal(http.StatusTooManyRequests), "even the right secret, from the client that guessed")
			Expect(wait).To(BeNumerically(">", 0))

			invitee := from("127.0.0.1")
			Expect(openFrom(ctx, invitee, r, tok)).To(Equal(http.StatusOK))
			Expect(redeemFrom(ctx, invitee, r, person("invitee"), tok).status).To(Equal(http.StatusCreated))
		})

		It("tighten every client's allowance once many clients guess at one ID, and still let the right secret in", func(ctx SpecContext) {
			limits := redeem.DefaultLimits
			r := limited(limits)
			inv, tok := issue(ctx, ns)
			openEventually(ctx, replicas[0], tok)
			guessed := 0
			for round := range 4 {
				for c := range 15 {
					status := openFrom(ctx, from(fmt.Sprintf("127.0.1.%d", c+1)), r, wrongSecret(inv, 100*round+c))
					Expect(status).To(BeElementOf(http.StatusNotFound, http.StatusTooManyRequests))
					if status == http.StatusNotFound {
						guessed++
					}
				}
			}
			Expect(guessed).To(BeNumerically("<", 15*limits.LockAfter),
				"fewer secrets were tried than %d clients could try at one ID on their own", 15)
			for c := range 15 {
				status, code, _ := refusal(redeemFrom(ctx, from(fmt.Sprintf("127.0.1.%d", c+1)), r, person("guesser"), tok))
				Expect(status).To(Equal(http.StatusTooManyRequests), "client %d is locked out of the ID", c+1)
				Expect(code).To(Equal("locked"))
			}

			typo := from("127.0.2.1")
			Expect(openFrom(ctx, typo, r, wrongSecret(inv, 999))).To(Equal(http.StatusNotFound))
			Expect(redeemFrom(ctx, typo, r, person("typist"), tok).status).To(Equal(http.StatusCreated),
				"one typo while the ID is under attack is forgiven")
			Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
		})
	})

	It("count every guess of a client that sends many at the same moment", func(ctx SpecContext) {
		// A credential the API server must vouch for: every request waits for that one
		// review, then all of them look their token up at once.
		r := limited(redeem.DefaultLimits, func(s *redeem.Server) {
			s.Authenticator = identity.TokenReviews(k8sClient, "")
		})
		guesser := from("127.0.0.88")
		credential := serviceAccountToken(ctx, ns, "hasty-guesser")
		var found, refused atomic.Int32
		var wg sync.WaitGroup
		for i := range 100 {
			wg.Go(func() {
				defer GinkgoRecover()
				// Unknown IDs, each its own: only the client's own budget can stop them.
				tok := fmt.Sprintf("%08d", i) + "." + strings.Repeat("a", 32)
				tok = strings.NewReplacer("0", "a", "1", "b", "2", "c", "3", "d", "4", "e", "5", "f", "6", "g", "7", "h", "8", "i", "9", "j").Replace(tok)
				var status int
				if i%2 == 0 {
					status = openFrom(ctx, guesser, r, tok)
				} else {
					status = redeemFrom(ctx, guesser, r, credential, tok).status
				}
				switch status {
				case http.StatusNotFound:
					found.Add(1)
				case http.StatusTooManyRequests:
					refused.Add(1)
				}
			})
		}
		wg.Wait()
		Expect(found.Load()).To(BeEquivalentTo(redeem.DefaultLimits.ClientBurst), "every guess beyond the budget was refused, however concurrent")
		Expect(refused.Load()).To(BeEquivalentTo(100 - redeem.DefaultLimits.ClientBurst))
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

	Context("when one credential keeps presenting a spent invitation", func() {
		It("answers 410 a few times, then 429 with Retry-After, and asks the API server about the credential once", func(ctx SpecContext) {
			reviews := &countingCreates{Writer: k8sClient}
			r := limited(redeem.DefaultLimits, func(s *redeem.Server) {
				s.Authenticator = identity.Chain{&identity.TokenReview{Client: reviews, Clock: fakeClock}}
			})
			inv, tok := issue(ctx, ns)
			openEventually(ctx, replicas[0], tok)
			Expect(redeemAt(ctx, r, serviceAccountToken(ctx, ns, "first"), tok).status).To(Equal(http.StatusCreated))
			spammer := serviceAccountToken(ctx, ns, "spammer")
			before := reviews.creates.Load()

			counts := map[int]int{}
			for range 200 {
				a := redeemAt(ctx, r, spammer, tok)
				counts[a.status]++
				if a.status == http.StatusTooManyRequests {
					_, code, wait := refusal(a)
					Expect(code).To(Equal("rate_limited"))
					Expect(wait).To(BeNumerically(">=", 1))
				}
			}
			Expect(counts).To(Equal(map[int]int{
				http.StatusGone:            redeem.DefaultLimits.UserRefusalBurst,
				http.StatusTooManyRequests: 200 - redeem.DefaultLimits.UserRefusalBurst,
			}))
			Expect(reviews.creates.Load()-before).To(BeEquivalentTo(1), "one TokenReview for 200 requests")
			Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))

			By("someone else, from the same client, is not refused")
			_, other := issue(ctx, ns)
			openEventually(ctx, replicas[0], other)
			Expect(redeemAt(ctx, r, serviceAccountToken(ctx, ns, "colleague"), other).status).To(Equal(http.StatusCreated))
		})

		It("bounds a loop of 'already redeemed' like refusals: each grants nothing and costs the API server a read", func(ctx SpecContext) {
			r := limited(redeem.DefaultLimits)
			_, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 2 })
			looper := person("looper-" + ns)
			Expect(redeemAt(ctx, r, looper, tok).status).To(Equal(http.StatusCreated))
			counts := map[int]int{}
			for range 50 {
				counts[redeemAt(ctx, r, looper, tok).status]++
			}
			Expect(counts).To(Equal(map[int]int{
				http.StatusOK:              redeem.DefaultLimits.UserRefusalBurst,
				http.StatusTooManyRequests: 50 - redeem.DefaultLimits.UserRefusalBurst,
			}))
		})

		It("asks the API server about made-up credentials sent all at once no more often than the client's budget allows", func(ctx SpecContext) {
			reviews := &countingCreates{Writer: k8sClient}
			r := limited(redeem.DefaultLimits, func(s *redeem.Server) {
				s.Authenticator = identity.Chain{&identity.TokenReview{Client: reviews, Clock: fakeClock}}
			})
			_, tok := issue(ctx, ns)
			forger := from("127.0.0.99")
			counts := map[int]int{}
			var mu sync.Mutex
			var wg sync.WaitGroup
			for i := range 100 {
				wg.Go(func() {
					defer GinkgoRecover()
					status := redeemFrom(ctx, forger, r, fmt.Sprintf("made-up-credential-%d", i), tok).status
					mu.Lock()
					defer mu.Unlock()
					counts[status]++
				})
			}
			wg.Wait()
			// Eight credentials are checked at a time, each after the budget is checked again.
			Expect(reviews.creates.Load()).To(BeNumerically("<=", redeem.DefaultLimits.ClientBurst+8), "TokenReviews for 100 made-up credentials")
			Expect(counts[http.StatusUnauthorized]).To(BeNumerically("<=", redeem.DefaultLimits.ClientBurst+8))
			Expect(counts[http.StatusUnauthorized] + counts[http.StatusTooManyRequests]).To(Equal(100))
		})

		It("bounds the refusals one client collects with many credentials", func(ctx SpecContext) {
			limits := redeem.DefaultLimits
			limits.RefusalBurst = 5
			r := limited(limits)
			inv, tok := issue(ctx, ns)
			openEventually(ctx, replicas[0], tok)
			Expect(redeemAt(ctx, r, person("first-"+ns), tok).status).To(Equal(http.StatusCreated))
			for i := range 5 {
				Expect(redeemAt(ctx, r, person(fmt.Sprintf("late-%d-%s", i, ns)), tok).status).To(Equal(http.StatusGone))
			}
			status, code, wait := refusal(redeemAt(ctx, r, person("one-more-"+ns), tok))
			Expect(status).To(Equal(http.StatusTooManyRequests))
			Expect(code).To(Equal("rate_limited"))
			Expect(wait).To(BeNumerically(">=", 1))
			Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
		})
	})

	Context("with bodies larger than anything the server accepts", func() {
		It("refuses them unread", func(ctx SpecContext) {
			r := limited(redeem.DefaultLimits)
			big := bytes.Repeat([]byte("a"), 1<<20)
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/api/v1/redemptions", bytes.NewReader(big))
			Expect(err).NotTo(HaveOccurred())
			req.Header.Set("Authorization", "Bearer "+person("big"))
			resp, err := http.DefaultClient.Do(req)
			Expect(err).NotTo(HaveOccurred())
			Expect(resp.Body.Close()).To(Succeed())
			Expect(resp.StatusCode).To(Equal(http.StatusRequestEntityTooLarge))
		})
	})
})

// serviceAccountToken makes a service account and a token for it: a credential the API
// server itself accepts, as the redemption server's TokenReview asks it.
func serviceAccountToken(ctx context.Context, ns, name string) string {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	Expect(k8sClient.Create(ctx, sa)).To(Succeed())
	request := &authenticationv1.TokenRequest{}
	Expect(k8sClient.SubResource("token").Create(ctx, sa, request)).To(Succeed())
	return request.Status.Token
}

// countingCreates counts what is created through it: here, TokenReviews.
type countingCreates struct {
	client.Writer
	creates atomic.Int32
}

func (c *countingCreates) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	c.creates.Add(1)
	return c.Writer.Create(ctx, obj, opts...)
}
