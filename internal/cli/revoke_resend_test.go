package cli_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

var _ = Describe("kubectl invite revoke", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		stdout(ctx, "-n", ns, "create", "bob", "--clusterrole", "view")
	})

	It("sets spec.revoked and says the roles already granted stay", func(ctx SpecContext) {
		out := stdout(ctx, "-n", ns, "revoke", "bob")
		Expect(out).To(Equal(`invitation "bob" in namespace "` + ns + `" revoked: its token no longer works. ` +
			"The roles it already granted stay; kubectl invite revoke bob -n " + ns + " --grants removes them.\n"))
		inv := getInvitation(ctx, ns, "bob")
		Expect(inv.Spec.Revoked).To(BeTrue())
		Expect(inv.Spec.RevokeGrants).To(BeFalse())
	})

	It("also sets spec.revokeGrants with --grants, even after a first revoke", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "revoke", "bob")
		out := stdout(ctx, "-n", ns, "revoke", "bob", "--grants")
		Expect(out).To(HaveSuffix("The roles it granted are being removed.\n"))
		inv := getInvitation(ctx, ns, "bob")
		Expect(inv.Spec.Revoked).To(BeTrue())
		Expect(inv.Spec.RevokeGrants).To(BeTrue())
	})

	It("says in its help that revocation cannot be undone", func(ctx SpecContext) {
		Expect(stdout(ctx, "revoke", "--help")).To(ContainSubstring("Revocation cannot be undone."))
	})
})

var _ = Describe("kubectl invite resend", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		stdout(ctx, "-n", ns, "create", "bob", "--clusterrole", "view")
	})

	It("rotates the token: the Secret holds a new one, and link prints its link", func(ctx SpecContext) {
		oldLink := stdout(ctx, "-n", ns, "link", "bob", "--wait", "20s")
		oldToken := string(tokenSecret(ctx, ns, "bob").Data[invitesv1alpha1.TokenSecretKey])

		before := time.Now()
		out := stdout(ctx, "-n", ns, "resend", "bob")
		Expect(out).To(Equal(`invitation "bob" in namespace "` + ns + `" gets a new token: the current one stops working. ` +
			"Hand over the new link: kubectl invite link bob -n " + ns + " --wait 30s\n"))
		stamp, err := time.Parse(time.RFC3339Nano, getInvitation(ctx, ns, "bob").Annotations[invitesv1alpha1.ResendAnnotation])
		Expect(err).NotTo(HaveOccurred())
		Expect(stamp).To(And(BeTemporally(">=", before), BeTemporally("<=", time.Now())), "the time of the resend")

		newLink := stdout(ctx, "-n", ns, "link", "bob", "--wait", "20s")
		secret := tokenSecret(ctx, ns, "bob")
		Expect(string(secret.Data[invitesv1alpha1.TokenSecretKey])).NotTo(Equal(oldToken))
		Expect(newLink).NotTo(Equal(oldLink))
		Expect(newLink).To(Equal(string(secret.Data[invitesv1alpha1.URLSecretKey]) + "\n"))
	})

	It("says a delivered invitation is sent again", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "mailed", "--clusterrole", "view", "--email", "ann@example.com", "--deliver", "email")
		Expect(stdout(ctx, "-n", ns, "resend", "mailed")).To(HaveSuffix("It will be sent again by email to ann@example.com.\n"))
	})

	It("refuses a revoked invitation, which gets no new token", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "revoke", "bob")
		_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "resend", "bob")
		Expect(err).To(MatchError(`invitation "bob" is revoked, which cannot be undone; create a new invitation instead`))
		Expect(getInvitation(ctx, ns, "bob").Annotations).NotTo(HaveKey(invitesv1alpha1.ResendAnnotation))
	})
})
