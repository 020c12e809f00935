package identity_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
)

var _ = Describe("Bearer tokens the API server accepts", Ordered, func() {
	var (
		k8sClient client.Client
		saToken   string
		// rolecallToken is the same service account's token minted for rolecall's audience,
		// as `kubectl create token ci-bot --audience rolecall` makes it.
		rolecallToken string
	)

	BeforeAll(func(ctx SpecContext) {
		env := &envtest.Environment{}
		cfg, err := env.Start()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(env.Stop)
		k8sClient, err = client.New(cfg, client.Options{Scheme: manager.NewScheme()})
		Expect(err).NotTo(HaveOccurred())

		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "default", Name: "ci-bot"}}
		Expect(k8sClient.Create(ctx, sa)).To(Succeed())
		request := &authenticationv1.TokenRequest{}
		Expect(k8sClient.SubResource("token").Create(ctx, sa, request)).To(Succeed())
		saToken = request.Status.Token
		bound := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"rolecall"}}}
		Expect(k8sClient.SubResource("token").Create(ctx, sa, bound)).To(Succeed())
		rolecallToken = bound.Status.Token
	})

	It("are reviewed by the API server, which names the user", func(ctx SpecContext) {
		u, err := (&identity.TokenReview{Client: k8sClient}).Authenticate(ctx, saToken)
		Expect(err).NotTo(HaveOccurred())
		Expect(u.Username).To(Equal("system:serviceaccount:default:ci-bot"))
		Expect(u.Groups).To(ContainElements("system:serviceaccounts", "system:serviceaccounts:default", "system:authenticated"))
		Expect(u.Email).To(BeEmpty())
	})

	It("are refused when the API server does not know them", func(ctx SpecContext) {
		_, err := (&identity.TokenReview{Client: k8sClient}).Authenticate(ctx, "made-up-token")
		Expect(err).To(MatchError(identity.ErrUnauthenticated))
	})

	It("are accepted by a chain whose OIDC authenticator does not know them", func(ctx SpecContext) {
		iss := newTestIssuer()
		DeferCleanup(iss.Close)
		jwt := authenticatorFor(ctx, iss, func() (*identity.JWT, error) {
			cfg, err := identity.LegacyOIDC{IssuerURL: iss.URL(), ClientID: "rolecall", UsernamePrefix: "oidc:"}.Configuration()
			if err != nil {
				return nil, err
			}
			cfg.JWT[0].Issuer.CertificateAuthority = iss.caPEM
			return identity.NewJWT(ctx, cfg)
		})
		chain := identity.Chain{jwt, &identity.TokenReview{Client: k8sClient}}

		u, err := chain.Authenticate(ctx, saToken)
		Expect(err).NotTo(HaveOccurred())
		Expect(u.Username).To(Equal("system:serviceaccount:default:ci-bot"))
		u, err = chain.Authenticate(ctx, iss.token(map[string]any{"sub": "alice"}))
		Expect(err).NotTo(HaveOccurred())
		Expect(u.Username).To(Equal("oidc:alice"))
		_, err = chain.Authenticate(ctx, "neither")
		Expect(err).To(MatchError(identity.ErrUnauthenticated))
	})

	Context("minted for rolecall's own audience", func() {
		It("are accepted by a review for that audience, and by no review for the API server's", func(ctx SpecContext) {
			u, err := (&identity.TokenReview{Client: k8sClient, Audiences: []string{"rolecall"}}).Authenticate(ctx, rolecallToken)
			Expect(err).NotTo(HaveOccurred())
			Expect(u.Username).To(Equal("system:serviceaccount:default:ci-bot"))

			_, err = (&identity.TokenReview{Client: k8sClient}).Authenticate(ctx, rolecallToken)
			Expect(err).To(MatchError(identity.ErrUnauthenticated), "worthless to the API server itself")
			_, err = (&identity.TokenReview{Client: k8sClient, Audiences: []string{"rolecall"}}).Authenticate(ctx, saToken)
			Expect(err).To(MatchError(identity.ErrUnauthenticated), "a token for the API server is not one for rolecall")
		})

		It("are accepted beside ordinary tokens by a chain of both reviews", func(ctx SpecContext) {
			chain := identity.TokenReviews(k8sClient, "rolecall")
			for _, credential := range []string{rolecallToken, saToken} {
				u, err := chain.Authenticate(ctx, credential)
				Expect(err).NotTo(HaveOccurred())
				Expect(u.Username).To(Equal("system:serviceaccount:default:ci-bot"))
			}
			_, err := identity.TokenReviews(k8sClient, "").Authenticate(ctx, rolecallToken)
			Expect(err).To(MatchError(identity.ErrUnauthenticated), "without an audience, only the API server's tokens")
		})
	})

	Context("asked again and again about one credential", func() {
		It("ask the API server once per TTL, whatever the answer, and forget it after", func(ctx SpecContext) {
			counting := &countingWriter{Writer: k8sClient}
			clock := clocktesting.NewFakeClock(time.Now())
			review := &identity.TokenReview{Client: counting, Clock: clock}
			var wg sync.WaitGroup
			for range 50 {
				wg.Go(func() {
					defer GinkgoRecover()
					u, err := review.Authenticate(ctx, saToken)
					Expect(err).NotTo(HaveOccurred())
					Expect(u.Username).To(Equal("system:serviceaccount:default:ci-bot"))
				})
			}
			wg.Wait()
			for range 50 {
				_, err := review.Authenticate(ctx, "made-up-token")
				Expect(err).To(MatchError(identity.ErrUnauthenticated))
			}
			Expect(counting.creates.Load()).To(BeEquivalentTo(2), "one review per credential")

			clock.Step(identity.DefaultTokenReviewTTL + time.Second)
			_, err := review.Authenticate(ctx, saToken)
			Expect(err).NotTo(HaveOccurred())
			Expect(counting.creates.Load()).To(BeEquivalentTo(3), "asked again once the answer is stale")
		})

		It("never remember a failure to ask", func(ctx SpecContext) {
			failing := &countingWriter{Writer: k8sClient, fail: 1}
			review := &identity.TokenReview{Client: failing}
			_, err := review.Authenticate(ctx, saToken)
			Expect(err).To(MatchError(identity.ErrUnavailable))
			u, err := review.Authenticate(ctx, saToken)
			Expect(err).NotTo(HaveOccurred(), "the next request asks again")
			Expect(u.Username).To(Equal("system:serviceaccount:default:ci-bot"))
		})

		It("remember nothing with a negative TTL", func(ctx SpecContext) {
			counting := &countingWriter{Writer: k8sClient}
			review := &identity.TokenReview{Client: counting, CacheTTL: -1}
			for range 3 {
				_, err := review.Authenticate(ctx, saToken)
				Expect(err).NotTo(HaveOccurred())
			}
			Expect(counting.creates.Load()).To(BeEquivalentTo(3))
		})
	})
})

// countingWriter counts the TokenReviews sent to the API server, and fails the first fail
// of them as an unreachable API server would.
type countingWriter struct {
	client.Writer
	creates atomic.Int32
	fail    int32
}

func (c *countingWriter) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if n := c.creates.Add(1); n <= c.fail {
		return errors.New("dial tcp: connection refused")
	}
	return c.Writer.Create(ctx, obj, opts...)
}
