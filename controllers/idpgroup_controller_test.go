package controllers_test

import (
	"context"
	"net/http"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

var _ = Describe("The identity provider hook", func() {
	It("adds the person to the grant's idpGroup, and removes them when the binding goes", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		group := "devs-" + ns
		allowIDPGroups(ctx, ns, group)
		inv := newInvitation(ns, "hal", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants[0].IDPGroup = group })
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)

		// What a redemption does.
		made, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:hal", time.Now())
		Expect(err).NotTo(HaveOccurred())
		key := client.ObjectKey{Namespace: made[0].Namespace, Name: made[0].Name}

		Eventually(func(g Gomega) {
			g.Expect(idp.callsFor("group", group)).To(ConsistOf(And(
				HaveKeyWithValue("action", "add"), HaveKeyWithValue("user", "oidc:hal"),
				HaveKeyWithValue("invitation", "hal"), HaveKeyWithValue("namespace", ns))))
			rb := &rbacv1.RoleBinding{}
			g.Expect(k8sClient.Get(ctx, key, rb)).To(Succeed())
			g.Expect(rb.Annotations).To(HaveKey(invitesv1alpha1.IDPGroupAddedAnnotation))
			cond := meta.FindStatusCondition(getInvitation(ctx, g, inv).Status.Conditions, invitesv1alpha1.InvitationIDPGroupsCondition)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(invitesv1alpha1.InvitationIDPGroupAddedReason))
		}).Should(Succeed())

		By("ending the grant (expiry, revokeGrants and deletion by hand all delete the binding)")
		Expect(k8sClient.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: objectMeta(key)})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(idp.callsFor("group", group)).To(HaveLen(2))
			g.Expect(idp.callsFor("group", group)[1]).To(HaveKeyWithValue("action", "remove"))
			g.Expect(k8sClient.Get(ctx, key, &rbacv1.RoleBinding{})).To(MatchError(ContainSubstring("not found")))
		}).Should(Succeed())
	})

	It("ends the Kubernetes access at once while a failing hook holds the binding, and finishes when the hook is back", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		group := "ops-" + ns
		allowIDPGroups(ctx, ns, group)
		inv := newInvitation(ns, "ivy", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants[0].IDPGroup = group })
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		made, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:ivy", time.Now())
		Expect(err).NotTo(HaveOccurred())
		key := client.ObjectKey{Namespace: made[0].Namespace, Name: made[0].Name}
		Eventually(func() []map[string]any { return idp.callsFor("group", group) }).Should(HaveLen(1))

		idp.answerWith(func(body map[string]any) int {
			if body["group"] == group {
				return http.StatusInternalServerError
			}
			return http.StatusNoContent
		})
		DeferCleanup(func() { idp.answerWith(nil) })
		Expect(k8sClient.Delete(ctx, &rbacv1.RoleBinding{ObjectMeta: objectMeta(key)})).To(Succeed())

		Eventually(func(g Gomega) {
			rb := &rbacv1.RoleBinding{}
			g.Expect(k8sClient.Get(ctx, key, rb)).To(Succeed())
			g.Expect(rb.DeletionTimestamp).NotTo(BeNil())
			g.Expect(rb.Subjects).To(BeEmpty(), "nobody is bound while the removal waits")
			cond := meta.FindStatusCondition(getInvitation(ctx, g, inv).Status.Conditions, invitesv1alpha1.InvitationIDPGroupsCondition)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Reason).To(Equal(invitesv1alpha1.InvitationIDPHookFailedReason))
			g.Expect(cond.Message).To(ContainSubstring("500"))
		}).Should(Succeed())

		idp.answerWith(nil)
		Eventually(func() error { return k8sClient.Get(ctx, key, &rbacv1.RoleBinding{}) }).
			WithTimeout(30 * time.Second).Should(MatchError(ContainSubstring("not found")))
	})
})

// allowIDPGroups lets the platform administrator offer membership of the groups in the
// namespace: only a policy can (RBAC delegation never allows an idpGroup).
func allowIDPGroups(ctx context.Context, ns string, groups ...string) {
	GinkgoHelper()
	rgp := &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "idp-groups-" + ns},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:           []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "platform-admin"}},
			NamespaceSelector:  &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns}},
			GrantableRoles:     []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}, {ClusterRole: "view"}},
			GrantableIDPGroups: groups,
		},
	}
	Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
	DeferCleanup(func(ctx SpecContext) { Expect(k8sClient.Delete(ctx, rgp)).To(Succeed()) })
}

func objectMeta(key client.ObjectKey) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name}
}

var _ = Describe("The identity provider hook, when it refuses", func() {
	It("reports a refused add once and does not retry it", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		group := "refused-" + ns
		allowIDPGroups(ctx, ns, group)
		idp.answerWith(func(body map[string]any) int {
			if body["group"] == group {
				return http.StatusUnprocessableEntity
			}
			return http.StatusNoContent
		})
		DeferCleanup(func() { idp.answerWith(nil) })
		inv := newInvitation(ns, "jo", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants[0].IDPGroup = group })
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		_, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:jo", time.Now())
		Expect(err).NotTo(HaveOccurred())

		Eventually(func(g Gomega) {
			cond := meta.FindStatusCondition(getInvitation(ctx, g, inv).Status.Conditions, invitesv1alpha1.InvitationIDPGroupsCondition)
			g.Expect(cond).NotTo(BeNil())
			g.Expect(cond.Message).To(ContainSubstring("not retried"))
		}).Should(Succeed())
		Consistently(func() []map[string]any { return idp.callsFor("group", group) }).WithTimeout(time.Second).Should(HaveLen(1))
	})
})
