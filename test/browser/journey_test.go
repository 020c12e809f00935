package browser

import (
	"context"
	"strings"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/redeem"
)

var _ = Describe("An invited person, in a browser", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("opens the link, signs in, accepts, lands on the redirect, and then holds exactly the role", func(ctx SpecContext) {
		inv, link := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.Email = "Alice@Example.COM"
			s.RedirectURL = console.URL + "/welcome"
		})
		b := newBrowser()
		do(b, chromedp.Navigate(link))
		Expect(text(b, "grants")).To(ContainSubstring("Role pod-reader in namespace " + ns))
		Expect(text(b, "uses-left")).To(Equal("1"))
		Expect(latest(ctx, inv).Status.Uses).To(BeZero(), "opening the page changes nothing")

		do(b, chromedp.Click(chromedp.ID("accept")), signIn("alice", "alice"))
		Expect(text(b, "console")).To(Equal("Team console"))
		location, err := chromedp.Run(b, chromedp.Location())
		Expect(err).NotTo(HaveOccurred())
		Expect(location).To(Equal(console.URL + "/welcome"))

		after := latest(ctx, inv)
		Expect(after.Status.Uses).To(BeEquivalentTo(1))
		Expect(after.Status.Redemptions).To(ConsistOf(HaveField("User", "oidc:alice")))

		By("signing in again outside the browser: alice's own ID token, checked by kube-apiserver itself")
		idToken, err := idp.Login(ctx, clientID, "", redeemURL+redeem.CallbackPath, "alice", "alice")
		Expect(err).NotTo(HaveOccurred())
		alice := asUser(idToken)
		review, err := alice.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		Expect(review.Status.UserInfo.Username).To(Equal("oidc:alice"))
		Expect(review.Status.UserInfo.Groups).To(ContainElement("oidc:team-a"))

		Expect(alice.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})).Error().NotTo(HaveOccurred(), "the role allows listing pods")
		Expect(mayI(ctx, alice, ns, "list", "pods")).To(BeTrue())
		Expect(mayI(ctx, alice, ns, "delete", "pods")).To(BeFalse(), "nothing beyond the role")
		_, err = alice.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "secrets stay closed: %v", err)
		_, err = alice.CoreV1().Pods("default").List(ctx, metav1.ListOptions{})
		Expect(apierrors.IsForbidden(err)).To(BeTrue(), "other namespaces stay closed: %v", err)
	})

	It("types a code on the home page, accepts, and sees what was granted and how to use it", func(ctx SpecContext) {
		inv, _ := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.TokenType = invitesv1alpha1.TokenTypeCode
			s.MaxUses = 5
		})
		b := newBrowser()
		do(b,
			chromedp.Navigate(redeemURL+"/"),
			chromedp.SendKeys(chromedp.ID("token"), strings.ToLower(tokenOf(ctx, inv))),
			chromedp.Click(chromedp.ID("continue")),
		)
		Expect(text(b, "uses-left")).To(Equal("5"))
		do(b, chromedp.Click(chromedp.ID("accept")), signIn("carol", "carol"))
		Expect(text(b, "welcome")).To(Equal("Welcome, oidc:carol"))
		Expect(text(b, "grants")).To(ContainSubstring("Role pod-reader in namespace " + ns))
		Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
	})

	It("is refused, with a page that says why, when the email is not verified", func(ctx SpecContext) {
		inv, link := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.Email = "bob@example.com" })
		b := newBrowser()
		do(b, chromedp.Navigate(link), chromedp.Click(chromedp.ID("accept")), signIn("bob", "bob"))
		Expect(problemCode(b)).To(Equal("email_unverified"))
		Expect(text(b, "problem")).To(Equal("Your email address is not verified"))
		Expect(latest(ctx, inv).Status.Uses).To(BeZero())
	})

	It("is refused when signed in with another account than the invited one", func(ctx SpecContext) {
		inv, link := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.Email = "alice@example.com" })
		b := newBrowser()
		do(b, chromedp.Navigate(link), chromedp.Click(chromedp.ID("accept")), signIn("carol", "carol"))
		Expect(problemCode(b)).To(Equal("email_mismatch"))
		Expect(text(b, "problem")).To(Equal("This invitation is for another account"))
		Expect(latest(ctx, inv).Status.Uses).To(BeZero())
	})

	It("can decline a private invitation, which then closes for good", func(ctx SpecContext) {
		inv, link := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.Email = "carol@example.com" })
		b := newBrowser()
		do(b, chromedp.Navigate(link), chromedp.Click(chromedp.ID("decline")), signIn("carol", "carol"))
		Expect(text(b, "declined")).To(Equal("Invitation declined"))
		after := latest(ctx, inv)
		Expect(after.Status.Phase).To(Equal(invitesv1alpha1.PhaseDeclined))
		Expect(after.Status.DeclinedBy).To(Equal("oidc:carol"))
		Expect(after.Status.Uses).To(BeZero())
		Eventually(func() string {
			do(b, chromedp.Navigate(link))
			return problemCode(b)
		}).Should(Equal("declined"))
	})
})

func mayI(ctx context.Context, cs *kubernetes.Clientset, ns, verb, resource string) bool {
	review, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
		Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Resource: resource}},
	}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return review.Status.Allowed
}

func tokenOf(ctx context.Context, inv *invitesv1alpha1.Invitation) string {
	secret := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, clientKey(inv.Namespace, latest(ctx, inv).Status.TokenSecretRef.Name), secret)).To(Succeed())
	return string(secret.Data[invitesv1alpha1.TokenSecretKey])
}
