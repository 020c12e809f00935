package gitops_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// newInvitation offers view in ns. The inviter is left to the admission webhook, as it is
// for an invitation synced from Git.
func newInvitation(ns, name string, mutate ...func(*invitesv1alpha1.Invitation)) *invitesv1alpha1.Invitation {
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}},
	}
	for _, m := range mutate {
		m(inv)
	}
	return inv
}

// liveObject reads an object as Argo CD sees it: unstructured, as the API server serves it.
func liveObject(ctx context.Context, g Gomega, kind string, key client.ObjectKey) map[string]any {
	obj := &unstructured.Unstructured{}
	obj.SetGroupVersionKind(invitesv1alpha1.GroupVersion.WithKind(kind))
	g.Expect(admin.Get(ctx, key, obj)).To(Succeed())
	return obj.Object
}

// healthInPhase waits until rolecall reports the phase for the invitation's current spec,
// and returns the health Argo CD shows for the invitation as it then is.
func healthInPhase(ctx context.Context, inv *invitesv1alpha1.Invitation, phase invitesv1alpha1.InvitationPhase) health {
	var h health
	Eventually(func(g Gomega) {
		obj := liveObject(ctx, g, "Invitation", client.ObjectKeyFromObject(inv))
		got, _, _ := unstructured.NestedString(obj, "status", "phase")
		g.Expect(got).To(Equal(string(phase)))
		observed, _, _ := unstructured.NestedInt64(obj, "status", "observedGeneration")
		g.Expect(observed).To(Equal((&unstructured.Unstructured{Object: obj}).GetGeneration()))
		var err error
		h, err = runHealthScript(scripts[invitationHealthKey], obj)
		g.Expect(err).NotTo(HaveOccurred())
	}).Should(Succeed())
	return h
}

// redeem takes one use for the user, writing status as the redemption server does: the
// count, its summary and the record of who redeemed, under the resourceVersion it read.
func redeem(ctx context.Context, inv *invitesv1alpha1.Invitation, user string) {
	Eventually(func(g Gomega) {
		latest := &invitesv1alpha1.Invitation{}
		g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(inv), latest)).To(Succeed())
		latest.Status.Uses++
		latest.Status.UsesSummary = latest.SummarizeUses()
		latest.Status.Redemptions = append(latest.Status.Redemptions, invitesv1alpha1.Redemption{
			User: user, RedeemedAt: metav1.NewTime(time.Now().Truncate(time.Second)),
		})
		g.Expect(admin.Status().Update(ctx, latest)).To(Succeed())
	}).Should(Succeed())
}

var _ = Describe("The Argo CD health check for Invitations", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	Context("when rolecall has issued the token", func() {
		It("is Healthy, with the Ready condition's message", func(ctx SpecContext) {
			inv := newInvitation(ns, "active")
			Expect(admin.Create(ctx, inv)).To(Succeed())
			h := healthInPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			Expect(h.Status).To(Equal("Healthy"))
			Expect(h.Message).To(HavePrefix("the invitation can be redeemed until "))
		})
	})

	Context("when every use has been redeemed", func() {
		It("is Healthy: the invitation did its job", func(ctx SpecContext) {
			inv := newInvitation(ns, "used", func(i *invitesv1alpha1.Invitation) { i.Spec.MaxUses = 1 })
			Expect(admin.Create(ctx, inv)).To(Succeed())
			healthInPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			redeem(ctx, inv, "oidc:newcomer")
			h := healthInPhase(ctx, inv, invitesv1alpha1.PhaseExhausted)
			Expect(h).To(Equal(health{Status: "Healthy", Message: "all 1 uses have been redeemed; raise spec.maxUses to allow more"}))
		})
	})

	Context("when the Custom token's Secret has not been synced yet", func() {
		It("is Progressing, and says what it waits for", func(ctx SpecContext) {
			inv := newInvitation(ns, "sealed", func(i *invitesv1alpha1.Invitation) {
				i.Spec.TokenType = invitesv1alpha1.TokenTypeCustom
				i.Spec.CustomTokenSecretRef = &invitesv1alpha1.SecretReference{Name: "beta-code"}
			})
			Expect(admin.Create(ctx, inv)).To(Succeed())
			h := healthInPhase(ctx, inv, invitesv1alpha1.PhasePending)
			Expect(h.Status).To(Equal("Progressing"))
			Expect(h.Message).To(HavePrefix("waiting for Secret beta-code"))
		})
	})

	Context("when Git sets spec.revoked", func() {
		It("is Suspended: nobody can redeem it any more", func(ctx SpecContext) {
			inv := newInvitation(ns, "revoked")
			Expect(admin.Create(ctx, inv)).To(Succeed())
			healthInPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			Expect(admin.Patch(ctx, inv, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`)))).To(Succeed())
			h := healthInPhase(ctx, inv, invitesv1alpha1.PhaseRevoked)
			Expect(h).To(Equal(health{Status: "Suspended", Message: "spec.revoked is true: no further redemptions"}))
		})
	})

	Context("when the token has expired", func() {
		It("is Suspended, and says how to issue a fresh token", func(ctx SpecContext) {
			inv := newInvitation(ns, "expired", func(i *invitesv1alpha1.Invitation) {
				i.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Second}
			})
			Expect(admin.Create(ctx, inv)).To(Succeed())
			h := healthInPhase(ctx, inv, invitesv1alpha1.PhaseExpired)
			Expect(h.Status).To(Equal("Suspended"))
			Expect(h.Message).To(ContainSubstring("set the annotation " + invitesv1alpha1.ResendAnnotation))
		})
	})

	Context("when the inviter has lost the right to offer it", func() {
		It("is Degraded, and says why policy denies it", func(ctx SpecContext) {
			group := "leads-" + ns
			policy := allowGroupToInviteViewers(ctx, group)
			lead := userClient("lee-"+ns, group)
			inv := newInvitation(ns, "delegated")
			Eventually(func() error { return lead.Create(ctx, inv) }).Should(Succeed(), "the policy reaches admission's cache")
			healthInPhase(ctx, inv, invitesv1alpha1.PhaseActive)

			Expect(admin.Delete(ctx, policy)).To(Succeed())
			h := healthInPhase(ctx, inv, invitesv1alpha1.PhaseDenied)
			Expect(h.Status).To(Equal("Degraded"))
			Expect(h.Message).To(ContainSubstring("no RoleGrantPolicy names user"))
		})
	})
})

// healthOnceDelivery waits until rolecall records the delivery outcome with this reason,
// and returns the health Argo CD shows for the invitation then.
func healthOnceDelivery(ctx context.Context, inv *invitesv1alpha1.Invitation, reason string) health {
	var h health
	Eventually(func(g Gomega) {
		obj := liveObject(ctx, g, "Invitation", client.ObjectKeyFromObject(inv))
		typed := &invitesv1alpha1.Invitation{}
		g.Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj, typed)).To(Succeed())
		g.Expect(meta.FindStatusCondition(typed.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)).To(HaveField("Reason", reason))
		var err error
		h, err = runHealthScript(scripts[invitationHealthKey], obj)
		g.Expect(err).NotTo(HaveOccurred())
	}).Should(Succeed())
	return h
}

func byWebhook(i *invitesv1alpha1.Invitation) {
	i.Spec.Delivery = &invitesv1alpha1.Delivery{Webhook: true}
}

var _ = Describe("The Argo CD health check for Invitations rolecall delivers", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	Context("when the link has been delivered", func() {
		It("is Healthy, with the Ready condition's message", func(ctx SpecContext) {
			inv := newInvitation(ns, "delivered", byWebhook)
			Expect(admin.Create(ctx, inv)).To(Succeed())
			h := healthOnceDelivery(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)
			Expect(h.Status).To(Equal("Healthy"))
			Expect(h.Message).To(HavePrefix("the invitation can be redeemed until "))
		})
	})

	Context("when a delivery failed and will be tried again", func() {
		It("is Progressing, and says what failed", func(ctx SpecContext) {
			inv := newInvitation(ns, "flaky-receiver", byWebhook)
			Expect(admin.Create(ctx, inv)).To(Succeed())
			h := healthOnceDelivery(ctx, inv, invitesv1alpha1.InvitationDeliveryRetryingReason)
			Expect(h).To(Equal(health{Status: "Progressing", Message: "attempt 1 of 5 to deliver by webhook failed: the receiver answered 503 Service Unavailable"}))
		})
	})

	Context("when the receiver refuses the link for good", func() {
		It("is Degraded, and says how to send a new one", func(ctx SpecContext) {
			inv := newInvitation(ns, "refused-receiver", byWebhook)
			Expect(admin.Create(ctx, inv)).To(Succeed())
			h := healthOnceDelivery(ctx, inv, invitesv1alpha1.InvitationDeliveryFailedReason)
			Expect(h.Status).To(Equal("Degraded"))
			Expect(h.Message).To(ContainSubstring("kubectl invite resend"))
		})
	})
})

var _ = Describe("The Argo CD health check for RoleGrantPolicies", func() {
	Context("when rolecall has checked the policy", func() {
		It("is Healthy, with the Ready condition's message", func(ctx SpecContext) {
			policy := allowGroupToInviteViewers(ctx, "checked-"+newNamespace(ctx))
			Eventually(func(g Gomega) {
				h, err := runHealthScript(scripts[roleGrantPolicyHealthKey], liveObject(ctx, g, "RoleGrantPolicy", client.ObjectKeyFromObject(policy)))
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(h).To(Equal(health{Status: "Healthy", Message: "the policy's selector, rules and limits can be used"}))
			}).Should(Succeed())
		})
	})
})

// allowGroupToInviteViewers makes a policy that lets members of group offer view anywhere.
func allowGroupToInviteViewers(ctx context.Context, group string) *invitesv1alpha1.RoleGrantPolicy {
	policy := &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: group},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: group}},
			GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
		},
	}
	Expect(admin.Create(ctx, policy)).To(Succeed())
	return policy
}

// userClient acts as a user the API server authenticates, in the given groups. Its only
// RBAC right is managing Invitations: it cannot bind view itself.
func userClient(name string, groups ...string) client.Client {
	user, err := testEnv.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(user.Config(), client.Options{Scheme: admin.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}
