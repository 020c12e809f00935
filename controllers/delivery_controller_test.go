package controllers_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/controllers"
	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/testing/mailpit"
	"github.com/rolecall/rolecall/internal/testing/testenv"
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

			By("asking for a resend once the cooldown is over")
			fakeClock.Step(delivery.DefaultLimits.Cooldown)
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

	Context("when resends or invitations pile up on one address (mail bombing)", func() {
		It("holds a burst of 20 resends to one mail after the cooldown, and the sixth of an hour until the first is an hour old", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			address := "hana@" + ns + ".example.com"
			inv := newInvitation(ns, "hana", byEmail(address))
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			first := delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason).Status.DeliveredAt.Time

			By("asking for 20 resends in a row, as the attacker did")
			for i := range 20 {
				resend(ctx, inv, fmt.Sprintf("burst-%d", i))
			}
			throttled := delivered(ctx, inv, invitesv1alpha1.InvitationDeliveryThrottledReason)
			Expect(deliveredCondition(throttled).Message).To(And(
				ContainSubstring("waits until "+first.Add(time.Minute).UTC().Format(time.RFC3339)),
				ContainSubstring("at most one delivery of an invitation every 1m0s")))
			Consistently(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(1)) }).
				WithTimeout(2 * time.Second).Should(Succeed())
			Eventually(eventReasons(ctx, ns)).Should(ContainElement(invitesv1alpha1.InvitationDeliveryThrottledReason))

			By("sending the current link once the cooldown is over")
			fakeClock.Step(time.Minute)
			touch(ctx, inv)
			Eventually(func(g Gomega) {
				mails := mailsTo(ctx, g, address)
				g.Expect(mails).To(HaveLen(2))
				g.Expect(mails[1].Text).To(ContainSubstring(string(tokenSecret(ctx, g, getInvitation(ctx, g, inv)).Data[invitesv1alpha1.URLSecretKey])))
			}).Should(Succeed())
			delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)

			By("allowing five deliveries in an hour, one a minute")
			for n := 3; n <= 5; n++ {
				fakeClock.Step(time.Minute)
				resend(ctx, inv, fmt.Sprintf("hourly-%d", n))
				Eventually(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(n)) }).Should(Succeed())
				delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)
			}
			fakeClock.Step(time.Minute)
			resend(ctx, inv, "hourly-6")
			throttled = delivered(ctx, inv, invitesv1alpha1.InvitationDeliveryThrottledReason)
			Expect(deliveredCondition(throttled).Message).To(And(
				ContainSubstring("waits until "+first.Add(time.Hour).UTC().Format(time.RFC3339)),
				ContainSubstring("at most 5 deliveries of an invitation per 1h0m0s")))

			By("holding it in a manager that just started, with nothing in memory: the bound is read from status")
			restarted := &controllers.DeliveryReconciler{
				Client: cachedClient, APIReader: k8sClient, Recorder: events.NewFakeRecorder(10), Clock: fakeClock,
				Mail:   &delivery.Mail{Host: mailServer.SMTPHost, Port: mailServer.SMTPPort, TLS: delivery.TLSNone, From: "invites@example.com"},
				Limits: delivery.DefaultLimits,
			}
			result, err := restarted.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(inv)})
			Expect(err).NotTo(HaveOccurred())
			Expect(result.RequeueAfter).To(Equal(first.Add(time.Hour).Sub(fakeClock.Now())), "woken when the hour is over, not polled")
			Consistently(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(5)) }).
				WithTimeout(time.Second).Should(Succeed())

			By("sending it when the first delivery is an hour old")
			fakeClock.Step(first.Add(time.Hour).Sub(fakeClock.Now()))
			touch(ctx, inv)
			Eventually(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(6)) }).Should(Succeed())
		})

		It("counts deliveries to one address across invitations, +tags included, and deleting invitations does not reset the count", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			address := "ivan@" + ns + ".example.com"
			var sent []*invitesv1alpha1.Invitation
			for i := range delivery.DefaultLimits.PerRecipient {
				inv := newInvitation(ns, fmt.Sprintf("ivan-%d", i), byEmail(address))
				Expect(k8sClient.Create(ctx, inv)).To(Succeed())
				delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)
				sent = append(sent, inv)
			}
			Eventually(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(delivery.DefaultLimits.PerRecipient)) }).Should(Succeed())

			By("deleting the invitations that were sent, then inviting the same inbox under a +tag")
			for _, inv := range sent {
				Expect(k8sClient.Delete(ctx, inv)).To(Succeed())
			}
			tagged := "Ivan+again@" + ns + ".example.com"
			one := newInvitation(ns, "ivan-again", byEmail(tagged))
			Expect(k8sClient.Create(ctx, one)).To(Succeed())
			held := delivered(ctx, one, invitesv1alpha1.InvitationDeliveryThrottledReason)
			Expect(deliveredCondition(held).Message).To(ContainSubstring("at most 10 deliveries to one address per 1h0m0s"))
			Consistently(func(g Gomega) { g.Expect(mailsTo(ctx, g, tagged)).To(BeEmpty()) }).
				WithTimeout(time.Second).Should(Succeed())
		})

		It("does not send again for someone who may patch invitations/status and erases the record", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			address := "judy@" + ns + ".example.com"
			inv := newInvitation(ns, "judy", byEmail(address))
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)

			mallory := statusWriter(ctx, ns, "mallory")
			for range 3 {
				Eventually(func(g Gomega) {
					latest := getInvitation(ctx, g, inv)
					before := latest.DeepCopy()
					latest.Status.RecentDeliveries, latest.Status.DeliveredAt = nil, nil
					meta.RemoveStatusCondition(&latest.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
					g.Expect(mallory.Status().Patch(ctx, latest, client.MergeFrom(before))).To(Succeed())
				}).Should(Succeed())
				delivered(ctx, inv, invitesv1alpha1.InvitationDeliveryThrottledReason)
			}
			Consistently(func(g Gomega) { g.Expect(mailsTo(ctx, g, address)).To(HaveLen(1)) }).
				WithTimeout(2 * time.Second).Should(Succeed())
		})
	})

	Context("what the mail says", func() {
		It("names the inviter even when the invitation hides the inviter from its landing page", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			address := "kim@" + ns + ".example.com"
			inv := newInvitation(ns, "kim", byEmail(address), func(i *invitesv1alpha1.Invitation) { i.Spec.HideInviter = true })
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			Eventually(func(g Gomega) {
				mails := mailsTo(ctx, g, address)
				g.Expect(mails).To(HaveLen(1))
				g.Expect(mails[0].Subject).To(Equal("platform-admin invited you to " + ns + " on Kubernetes"))
				g.Expect(mails[0].Text).To(ContainSubstring("platform-admin invited you"))
				g.Expect(mails[0].HTML).To(ContainSubstring("<strong>platform-admin</strong> invited you"))
			}).Should(Succeed())
		})

		It("says plainly that accepting an upgrade: Replace invitation removes earlier rolecall grants, and where", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			other := newNamespace(ctx)
			address := "lee@" + ns + ".example.com"
			inv := newInvitation(ns, "lee", byEmail(address), func(i *invitesv1alpha1.Invitation) {
				i.Spec.Upgrade = invitesv1alpha1.UpgradeReplace
				i.Spec.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit"}, {ClusterRole: "view", Namespace: other}}
			})
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			Eventually(func(g Gomega) {
				mails := mailsTo(ctx, g, address)
				g.Expect(mails).To(HaveLen(1))
				for _, part := range []string{mails[0].Text, mails[0].HTML} {
					g.Expect(part).To(ContainSubstring("Accepting also removes the roles that earlier rolecall invitations gave you in:"))
					g.Expect(part).To(ContainSubstring("namespace " + ns))
					g.Expect(part).To(ContainSubstring("namespace " + other))
				}
			}).Should(Succeed())
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

// resend asks for a new token, as `kubectl invite resend` does.
func resend(ctx context.Context, inv *invitesv1alpha1.Invitation, value string) {
	GinkgoHelper()
	Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"metadata":{"annotations":{"`+invitesv1alpha1.ResendAnnotation+`":"`+value+`"}}}`))).To(Succeed())
}

// touch changes nothing that matters, so that the controllers look at the invitation again
// after the fake clock moved (a real clock would have woken them).
func touch(ctx context.Context, inv *invitesv1alpha1.Invitation) {
	GinkgoHelper()
	Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"metadata":{"labels":{"touched":"`+fmt.Sprint(time.Now().UnixNano())+`"}}}`))).To(Succeed())
}

func deliveredCondition(inv *invitesv1alpha1.Invitation) *metav1.Condition {
	return meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
}

// statusWriter is a user who may read invitations and patch their status, nothing more.
func statusWriter(ctx context.Context, ns, user string) client.Client {
	GinkgoHelper()
	c, err := testenv.Actor(ctx, k8sClient, cfg, ns, "status-writer", user,
		rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"get"}},
		rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations/status"}, Verbs: []string{"patch"}},
	)
	Expect(err).NotTo(HaveOccurred())
	return c
}

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
