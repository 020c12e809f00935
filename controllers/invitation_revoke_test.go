package controllers_test

import (
	"time"

	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// grantsOf lists every binding an invitation made, in any namespace or cluster-wide.
func grantsOf(ctx context.Context, g Gomega, inv *invitesv1alpha1.Invitation) []string {
	var names []string
	var rbs rbacv1.RoleBindingList
	g.Expect(k8sClient.List(ctx, &rbs, client.MatchingLabels{invitesv1alpha1.InvitationUIDLabel: string(inv.UID)})).To(Succeed())
	for _, rb := range rbs.Items {
		names = append(names, rb.Namespace+"/"+rb.Name)
	}
	var crbs rbacv1.ClusterRoleBindingList
	g.Expect(k8sClient.List(ctx, &crbs, client.MatchingLabels{invitesv1alpha1.InvitationUIDLabel: string(inv.UID)})).To(Succeed())
	for _, crb := range crbs.Items {
		names = append(names, crb.Name)
	}
	return names
}

// withWideGrants grants in the invitation's namespace, another namespace and cluster-wide.
func withWideGrants(other string) func(*invitesv1alpha1.Invitation) {
	return func(i *invitesv1alpha1.Invitation) {
		i.Spec.Grants = []invitesv1alpha1.Grant{
			{ClusterRole: "edit"}, {ClusterRole: "view", Namespace: other}, {ClusterRole: "view", ClusterWide: true},
		}
		i.Spec.MaxUses = 5
		i.Spec.RevokeGrants = true
	}
}

var _ = Describe("revokeGrants", func() {
	It("takes every grant back when the invitation is revoked, and keeps taking back late ones", func(ctx SpecContext) {
		ns, other := newNamespace(ctx), newNamespace(ctx)
		inv := newInvitation(ns, "team", withWideGrants(other))
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		for _, user := range []string{"oidc:kim", "oidc:lee"} {
			_, err := bindings.Ensure(ctx, k8sClient, sealer, inv, user, time.Now())
			Expect(err).NotTo(HaveOccurred())
		}
		Expect(grantsOf(ctx, Default, inv)).To(HaveLen(6))

		Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"spec":{"revoked":true}}`))).To(Succeed())
		Eventually(func(g Gomega) { g.Expect(grantsOf(ctx, g, inv)).To(BeEmpty()) }).Should(Succeed())
		Eventually(eventReasons(ctx, ns)).Should(ContainElement("GrantsRevoked"))

		By("a redemption that counted its use just before the revocation binds a moment later")
		_, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:late", time.Now())
		Expect(err).NotTo(HaveOccurred())
		Eventually(func(g Gomega) { g.Expect(grantsOf(ctx, g, inv)).To(BeEmpty()) }).Should(Succeed())
	})

	It("takes the grants along when the invitation is deleted", func(ctx SpecContext) {
		ns, other := newNamespace(ctx), newNamespace(ctx)
		inv := newInvitation(ns, "pruned", withWideGrants(other))
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		Expect(inv.Finalizers).To(ContainElement(invitesv1alpha1.RevokeGrantsFinalizer))
		_, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:max", time.Now())
		Expect(err).NotTo(HaveOccurred())

		Expect(k8sClient.Delete(ctx, inv)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(grantsOf(ctx, g, inv)).To(BeEmpty())
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), &invitesv1alpha1.Invitation{})).To(MatchError(ContainSubstring("not found")))
		}).Should(Succeed())
	})

	It("is a promise only when asked: without it, grants outlive a revoked or deleted invitation", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "lasting-grants", func(i *invitesv1alpha1.Invitation) { i.Spec.Revoked = false })
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		Expect(inv.Finalizers).NotTo(ContainElement(invitesv1alpha1.RevokeGrantsFinalizer))
		_, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:ned", time.Now())
		Expect(err).NotTo(HaveOccurred())

		Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"spec":{"revoked":true}}`))).To(Succeed())
		eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseRevoked)
		Expect(k8sClient.Delete(ctx, inv)).To(Succeed())
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), &invitesv1alpha1.Invitation{})
		}).
			Should(MatchError(ContainSubstring("not found")))
		Expect(grantsOf(ctx, Default, inv)).To(HaveLen(1))
	})
})
