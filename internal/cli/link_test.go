package cli_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

var _ = Describe("kubectl invite link", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("prints the link once the token is issued: the URL in the token Secret, alone", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "bob", "--clusterrole", "view")
		out := stdout(ctx, "-n", ns, "link", "bob", "--wait", "20s")
		secret := tokenSecret(ctx, ns, "bob")
		Expect(out).To(Equal(string(secret.Data[invitesv1alpha1.URLSecretKey]) + "\n"))
		Expect(out).To(HavePrefix(redeemURL + "/i/"))
	})

	It("prints a Code token's code, then its link", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "workshop", "--clusterrole", "view", "--token-type", "Code", "--max-uses", "10")
		out := stdout(ctx, "-n", ns, "link", "workshop", "--wait", "20s")
		secret := tokenSecret(ctx, ns, "workshop")
		code := string(secret.Data[invitesv1alpha1.TokenSecretKey])
		Expect(code).To(MatchRegexp(`^[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}$`))
		Expect(out).To(Equal("Code: " + code + "\nLink: " + string(secret.Data[invitesv1alpha1.URLSecretKey]) + "\n"))
	})

	It("says why there is no token yet, from the conditions, and waits for one with --wait", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "own", "--clusterrole", "view", "--custom-token-secret", "own-token")
		Eventually(func(g Gomega) {
			_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "link", "own")
			g.Expect(err).To(MatchError(ContainSubstring(`invitation "own" has no token yet: ` + invitesv1alpha1.InvitationCustomTokenMissingReason + ": ")))
		}).Should(Succeed())

		done := make(chan string)
		go func() {
			defer GinkgoRecover()
			done <- stdout(ctx, "-n", ns, "link", "own", "--wait", "20s")
		}()
		Expect(env.Admin.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "own-token", Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}},
			StringData: map[string]string{invitesv1alpha1.TokenSecretKey: "Tq7vL9x-Rk2mWp4z-Hs8nJd3c-Yb6fGt1q"},
		})).To(Succeed())
		var out string
		Eventually(done).Should(Receive(&out))
		Expect(out).To(Equal(string(tokenSecret(ctx, ns, "own").Data[invitesv1alpha1.URLSecretKey]) + "\n"))
		Expect(out).To(HavePrefix(redeemURL + "/i/"))
	})

	It("gives up after --wait, saying what it waited for", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "own", "--clusterrole", "view", "--custom-token-secret", "nowhere")
		_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "link", "own", "--wait", "2s")
		Expect(err).To(MatchError(MatchRegexp(`^invitation "own" (has no token yet: .+|has not been processed by the rolecall controller yet) \(waited 2s\)$`)))
	})

	It("says an invitation that can no longer be redeemed cannot, and why", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "gone", "--clusterrole", "view")
		stdout(ctx, "-n", ns, "link", "gone", "--wait", "20s")
		stdout(ctx, "-n", ns, "revoke", "gone")
		Eventually(func(g Gomega) {
			_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "link", "gone", "--wait", "20s")
			g.Expect(err).To(MatchError(`invitation "gone" cannot be redeemed (Revoked): spec.revoked is true: no further redemptions`))
		}).Should(Succeed())
	})

	It("needs the right to read the token Secret, and says so", func(ctx SpecContext) {
		Expect(env.Admin.Create(ctx, &rbacv1.Role{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "invitation-reader"},
			Rules:      []rbacv1.PolicyRule{{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"get"}}},
		})).To(Succeed())
		Expect(env.Admin.Create(ctx, &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "invitation-reader"},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "invitation-reader"},
			Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "reader"}},
		})).To(Succeed())
		stdout(ctx, "-n", ns, "create", "secretive", "--clusterrole", "view")
		stdout(ctx, "-n", ns, "link", "secretive", "--wait", "20s")
		_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "link", "secretive", "--as", "reader")
		Expect(err).To(MatchError(HavePrefix(`the link is in Secret secretive-invitation-token in namespace "` + ns + `", which you may not read: `)))
	})
})
