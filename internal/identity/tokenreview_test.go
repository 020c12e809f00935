package identity_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
)

var _ = Describe("Bearer tokens the API server accepts", Ordered, func() {
	var (
		k8sClient client.Client
		saToken   string
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
})
