package controllers_test

import (
	"context"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/mailpit"
)

// mailsTo reads every message mailpit received for the address, oldest first.
func mailsTo(ctx context.Context, g Gomega, address string) []mailpit.Message {
	list, err := mailServer.Messages(ctx)
	g.Expect(err).NotTo(HaveOccurred())
	var out []mailpit.Message
	for i := len(list) - 1; i >= 0; i-- {
		if len(list[i].To) == 1 && list[i].To[0].Address == address {
			msg, err := mailServer.Message(ctx, list[i].ID)
			g.Expect(err).NotTo(HaveOccurred())
			out = append(out, msg)
		}
	}
	return out
}

func delivered(ctx context.Context, inv *invitesv1alpha1.Invitation, reason string) *invitesv1alpha1.Invitation {
	GinkgoHelper()
	var latest *invitesv1alpha1.Invitation
	Eventually(func(g Gomega) {
		latest = getInvitation(ctx, g, inv)
		cond := meta.FindStatusCondition(latest.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
		g.Expect(cond).NotTo(BeNil())
		g.Expect(cond.Reason).To(Equal(reason), cond.Message)
	}).Should(Succeed())
	return latest
}

func byEmail(address string) func(*invitesv1alpha1.Invitation) {
	return func(i *invitesv1alpha1.Invitation) {
		i.Spec.Email = address
		i.Spec.Delivery = &invitesv1alpha1.Delivery{Email: true}
	}
}

func byWebhook(i *invitesv1alpha1.Invitation) {
	i.Spec.Delivery = &invitesv1alpha1.Delivery{Webhook: true}
}

var _ = Describe("Delivery", func() {
	Context("by email, through a real SMTP server", func() {
		It("sends the link once per token: re-applying sends nothing, a resend sends the new link", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			address := "dana@" + ns + ".example.com"
			inv := newInvitation(ns, "dana", byEmail(address))
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())

			inv = delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)
			Expect(inv.Status.DeliveredAt).NotTo(BeNil())
			firstURL := string(tokenSecretOf(ctx, inv).Data[invitesv1alpha1.URLSecretKey])
			Eventually(func(g Gomega) {
				mails := mailsTo(ctx, g, address)
				g.Expect(mails).To(HaveLen(1))
				g.Expect(mails[0].Text).To(ContainSubstring(firstURL))
				g.Expect(mails[0].HTML).To(ContainSubstring(firstURL))
				g.Expect(mails[0].Text).To(ContainSubstring("platform-admin invited you"))
			}).Should(Succeed())
			Eventually(eventReasons(ctx, ns)).Should(ContainElement("Delivered"))

			By("re-applying the invitation as a GitOps tool would")
			Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"metadata":{"labels":{"synced":"again"}}}`))).To(Succeed())
			Consistently(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(1)) }).
				WithTimeout(time.Second).Should(Succeed())

			By("asking for a resend")
			Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"metadata":{"annotations":{"`+invitesv1alpha1.ResendAnnotation+`":"1"}}}`))).To(Succeed())
			Eventually(func(g Gomega) {
				mails := mailsTo(ctx, g, address)
				g.Expect(mails).To(HaveLen(2))
				g.Expect(mails[1].Text).NotTo(ContainSubstring(firstURL))
				g.Expect(mails[1].Text).To(ContainSubstring(string(tokenSecret(ctx, g, getInvitation(ctx, g, inv)).Data[invitesv1alpha1.URLSecretKey])))
			}).Should(Succeed())
		})

		It("is refused by the schema without an address to send to", func(ctx SpecContext) {
			inv := newInvitation(newNamespace(ctx), "nobody", func(i *invitesv1alpha1.Invitation) {
				i.Spec.Delivery = &invitesv1alpha1.Delivery{Email: true}
			})
			Expect(k8sClient.Create(ctx, inv)).To(MatchError(ContainSubstring("delivery.email needs spec.email")))
		})

		It("sends nothing for an invitation that cannot be redeemed", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			address := "revoked@" + ns + ".example.com"
			inv := newInvitation(ns, "revoked", byEmail(address), func(i *invitesv1alpha1.Invitation) { i.Spec.Revoked = true })
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseRevoked)
			Consistently(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(BeEmpty()) }).
				WithTimeout(time.Second).Should(Succeed())
		})
	})

	Context("by webhook, to a receiver that checks the signature", func() {
		It("retries a receiver that is down, with backoff, and records each attempt", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			failures := 2
			chat.answerWith(func(body map[string]any) int {
				if body["namespace"] == ns && failures > 0 {
					failures--
					return http.StatusServiceUnavailable
				}
				return http.StatusNoContent
			})
			DeferCleanup(func() { chat.answerWith(nil) })
			inv := newInvitation(ns, "erin", byWebhook)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())

			inv = delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)
			Expect(inv.Status.DeliveryAttempts).To(BeEquivalentTo(2))
			calls := chat.callsFor("namespace", ns)
			Expect(calls).To(HaveLen(3))
			Expect(calls[2]).To(HaveKeyWithValue("url", string(tokenSecretOf(ctx, inv).Data[invitesv1alpha1.URLSecretKey])))
			Eventually(eventReasons(ctx, ns)).Should(ContainElements(invitesv1alpha1.InvitationDeliveryRetryingReason, "Delivered"))
		})

		It("gives up after five attempts and says so, for kubectl describe and Argo CD", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			chat.answerWith(func(map[string]any) int { return http.StatusBadGateway })
			DeferCleanup(func() { chat.answerWith(nil) })
			inv := newInvitation(ns, "frank", byWebhook)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())

			inv = delivered(ctx, inv, invitesv1alpha1.InvitationDeliveryFailedReason)
			Expect(inv.Status.DeliveryAttempts).To(BeEquivalentTo(5))
			Expect(inv.Status.Phase).To(Equal(invitesv1alpha1.PhaseActive), "Active does not wait for delivery")
			cond := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
			Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			Expect(cond.Message).To(ContainSubstring("502"))
			Expect(cond.Message).To(ContainSubstring("kubectl invite resend"))
			Consistently(func() []map[string]any { return chat.callsFor("namespace", ns) }).
				WithTimeout(time.Second).Should(HaveLen(5))
		})

		It("gives up at once when the receiver refuses the request", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			chat.answerWith(func(map[string]any) int { return http.StatusBadRequest })
			DeferCleanup(func() { chat.answerWith(nil) })
			inv := newInvitation(ns, "gina", byWebhook)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())

			inv = delivered(ctx, inv, invitesv1alpha1.InvitationDeliveryFailedReason)
			Expect(inv.Status.DeliveryAttempts).To(BeEquivalentTo(1))
		})
	})

	It("never puts the token in events or conditions", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "secretive", byWebhook)
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)
		value := string(tokenSecretOf(ctx, inv).Data[invitesv1alpha1.TokenSecretKey])
		secretHalf := value[strings.LastIndex(value, ".")+1:]
		var events eventsv1.EventList
		Expect(k8sClient.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
		for _, e := range events.Items {
			Expect(e.Note).NotTo(ContainSubstring(secretHalf))
		}
		for _, c := range inv.Status.Conditions {
			Expect(c.Message).NotTo(ContainSubstring(secretHalf))
		}
	})
})

// tokenSecretOf is the token Secret once it holds the invitation's current token.
func tokenSecretOf(ctx context.Context, inv *invitesv1alpha1.Invitation) *corev1.Secret {
	GinkgoHelper()
	latest := &invitesv1alpha1.Invitation{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), latest)).To(Succeed())
	return issuedSecret(ctx, latest)
}

func eventReasons(ctx context.Context, ns string) func(g Gomega) []string {
	return func(g Gomega) []string {
		var list eventsv1.EventList
		g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		reasons := make([]string, 0, len(list.Items))
		for _, e := range list.Items {
			reasons = append(reasons, e.Reason)
		}
		return reasons
	}
}
