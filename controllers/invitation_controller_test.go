package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/controllers"
	"github.com/rolecall/rolecall/internal/policy"
)

func newInvitation(ns, name string, mutate ...func(*invitesv1alpha1.Invitation)) *invitesv1alpha1.Invitation {
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: invitesv1alpha1.InvitationSpec{
			Grants:       []invitesv1alpha1.Grant{{ClusterRole: "edit"}},
			ExpiresAfter: &metav1.Duration{Duration: time.Hour},
			// What the admission webhook (not running in this suite) would record for a
			// cluster administrator, who may grant anything.
			Inviter: &invitesv1alpha1.Inviter{Username: "platform-admin", Groups: []string{"system:masters", "system:authenticated"}},
		},
	}
	for _, m := range mutate {
		m(inv)
	}
	return inv
}

func getInvitation(ctx context.Context, g Gomega, inv *invitesv1alpha1.Invitation) *invitesv1alpha1.Invitation {
	latest := &invitesv1alpha1.Invitation{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), latest)).To(Succeed())
	return latest
}

// eventuallyPhase waits for the phase and returns the invitation as it then is.
func eventuallyPhase(ctx context.Context, inv *invitesv1alpha1.Invitation, phase invitesv1alpha1.InvitationPhase) *invitesv1alpha1.Invitation {
	var latest *invitesv1alpha1.Invitation
	Eventually(func(g Gomega) {
		latest = getInvitation(ctx, g, inv)
		g.Expect(latest.Status.Phase).To(Equal(phase))
		g.Expect(latest.Status.ObservedGeneration).To(Equal(latest.Generation))
	}).Should(Succeed())
	return latest
}

func tokenSecret(ctx context.Context, g Gomega, inv *invitesv1alpha1.Invitation) *corev1.Secret {
	g.Expect(inv.Status.TokenSecretRef).NotTo(BeNil())
	secret := &corev1.Secret{}
	g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Status.TokenSecretRef.Name}, secret)).To(Succeed())
	return secret
}

// issuedSecret waits for the token Secret to hold the token status names: status is
// written before the Secret, so for a moment an Active invitation's Secret can lag.
func issuedSecret(ctx context.Context, inv *invitesv1alpha1.Invitation) *corev1.Secret {
	var secret *corev1.Secret
	Eventually(func(g Gomega) {
		secret = tokenSecret(ctx, g, inv)
		g.Expect(secret.Annotations).To(HaveKeyWithValue("invites.rolecall.dev/token-id", inv.Status.TokenID))
	}).Should(Succeed())
	return secret
}

// mergePatch changes only what it names, so it never conflicts with the controller's writes.
func mergePatch(patch string) client.Patch {
	return client.RawPatch(types.MergePatchType, []byte(patch))
}

func readyCondition(inv *invitesv1alpha1.Invitation) *metav1.Condition {
	return meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationReadyCondition)
}

// directReconciler is a second reconciler on the same clock, called by the test itself so
// that it can look at the Result (the scheduled requeue) the manager's copy would return.
func directReconciler() *controllers.InvitationReconciler {
	return &controllers.InvitationReconciler{
		Client: k8sClient, APIReader: k8sClient, Scheme: k8sClient.Scheme(),
		Recorder: events.NewFakeRecorder(100), Clock: fakeClock,
		Authorizer: &policy.Authorizer{Reader: cachedClient, Writer: k8sClient, AllowRBACDelegation: true, DefaultExpiresAfter: 72 * time.Hour},
		Sealer:     sealer, PublicURL: publicURL, DefaultExpiresAfter: 72 * time.Hour,
	}
}

func reconcileNow(ctx context.Context, inv *invitesv1alpha1.Invitation) ctrl.Result {
	var result ctrl.Result
	Eventually(func() error {
		var err error
		result, err = directReconciler().Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(inv)})
		return err
	}).Should(Succeed())
	return result
}

var _ = Describe("Invitation controller", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	Context("when a Link invitation is created", func() {
		It("issues a token into a Secret it owns and becomes Active", func(ctx SpecContext) {
			inv := newInvitation(ns, "alice")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)

			Expect(active.Status.TokenID).To(MatchRegexp(`^[a-z2-7]{8}$`))
			Expect(active.Status.IssuedAt).NotTo(BeNil())
			Expect(active.Status.ExpiresAt.Time).To(Equal(active.Status.IssuedAt.Add(time.Hour)))
			Expect(active.Status.UsesSummary).To(Equal("0/1"))
			Expect(active.Status.GrantSummary).To(Equal("edit"))
			Expect(readyCondition(active).Status).To(Equal(metav1.ConditionTrue))
			Expect(meta.IsStatusConditionTrue(active.Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition)).To(BeTrue())

			secret := issuedSecret(ctx, active)
			Expect(secret.Name).To(Equal("alice-invitation-token"))
			Expect(metav1.IsControlledBy(secret, active)).To(BeTrue(), "the Secret is garbage-collected with its invitation")
			Expect(secret.Labels).To(HaveKeyWithValue(invitesv1alpha1.TokenLabel, invitesv1alpha1.TokenLabelIssued))
			Expect(secret.Labels).To(HaveKeyWithValue(invitesv1alpha1.InvitationNameLabel, "alice"))
			value := string(secret.Data[invitesv1alpha1.TokenSecretKey])
			Expect(value).To(MatchRegexp(`^` + active.Status.TokenID + `\.[a-z2-7]{32}$`))
			Expect(string(secret.Data[invitesv1alpha1.URLSecretKey])).To(Equal(publicURL + "/i/" + value))
		})

		It("keeps the token out of the Invitation, its events and the manager's log", func(ctx SpecContext) {
			inv := newInvitation(ns, "secretive")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			value := string(issuedSecret(ctx, active).Data[invitesv1alpha1.TokenSecretKey])
			secretHalf := strings.SplitN(value, ".", 2)[1]

			Eventually(func(g Gomega) {
				var list eventsv1.EventList
				g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
				g.Expect(list.Items).NotTo(BeEmpty())
				raw, err := json.Marshal(list)
				g.Expect(err).NotTo(HaveOccurred())
				g.Expect(string(raw)).NotTo(ContainSubstring(secretHalf))
			}).Should(Succeed())
			raw, err := json.Marshal(getInvitation(ctx, Default, inv))
			Expect(err).NotTo(HaveOccurred())
			Expect(string(raw)).NotTo(ContainSubstring(secretHalf))
			Expect(managerLog.String()).NotTo(ContainSubstring(secretHalf))
			Expect(managerLog.String()).NotTo(ContainSubstring("Request Body"), "client-go's body logging must stay off")
		})

		It("says what it did in Events", func(ctx SpecContext) {
			inv := newInvitation(ns, "told")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			Eventually(func(g Gomega) {
				var list eventsv1.EventList
				g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
				reasons := []string{}
				for _, e := range list.Items {
					g.Expect(e.Regarding.UID).To(Equal(active.UID))
					reasons = append(reasons, e.Reason)
				}
				g.Expect(reasons).To(ContainElement("Issued"))
				g.Expect(reasons).NotTo(ContainElement("Active"), "Issued already says the invitation can be redeemed")
			}).Should(Succeed())
		})
	})

	Context("when many invitations are created at once", func() {
		It("issues each token exactly once, and the Secret holds the token status names", func(ctx SpecContext) {
			invitations := make([]*invitesv1alpha1.Invitation, 10)
			for i := range invitations {
				invitations[i] = newInvitation(ns, fmt.Sprintf("crowd-%d", i))
				Expect(k8sClient.Create(ctx, invitations[i])).To(Succeed())
			}
			issued := map[string]string{}
			for _, inv := range invitations {
				active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
				secret := issuedSecret(ctx, active)
				Expect(string(secret.Data[invitesv1alpha1.TokenSecretKey])).To(HavePrefix(active.Status.TokenID + "."))
				issued[inv.Name] = string(secret.Data[invitesv1alpha1.TokenSecretKey])
			}
			Consistently(func(g Gomega) {
				for _, inv := range invitations {
					latest := getInvitation(ctx, g, inv)
					g.Expect(string(tokenSecret(ctx, g, latest).Data[invitesv1alpha1.TokenSecretKey])).To(Equal(issued[inv.Name]))
				}
			}, "2s", "200ms").Should(Succeed())
		})
	})

	Context("when a Code invitation is created", func() {
		It("issues a short grouped code", func(ctx SpecContext) {
			inv := newInvitation(ns, "code", func(i *invitesv1alpha1.Invitation) { i.Spec.TokenType = invitesv1alpha1.TokenTypeCode })
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			value := string(issuedSecret(ctx, active).Data[invitesv1alpha1.TokenSecretKey])
			Expect(value).To(MatchRegexp(`^[0-9A-HJKMNP-TV-Z]{4}(-[0-9A-HJKMNP-TV-Z]{4}){3}$`))
			Expect(strings.ReplaceAll(value, "-", "")).To(HavePrefix(active.Status.TokenID))
		})
	})

	Context("when time passes", func() {
		It("schedules a wake-up for the remaining lifetime and then expires, without polling", func(ctx SpecContext) {
			inv := newInvitation(ns, "brief")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			remaining := active.Status.ExpiresAt.Sub(fakeClock.Now())
			Expect(remaining).To(BeNumerically(">", 0))

			Expect(reconcileNow(ctx, inv).RequeueAfter).To(Equal(remaining))

			fakeClock.Step(remaining - 20*time.Minute)
			Expect(reconcileNow(ctx, inv).RequeueAfter).To(Equal(20 * time.Minute))

			fakeClock.Step(20 * time.Minute)
			Expect(reconcileNow(ctx, inv)).To(Equal(ctrl.Result{}), "an expired invitation needs no further wake-up")
			expired := getInvitation(ctx, Default, inv)
			Expect(expired.Status.Phase).To(Equal(invitesv1alpha1.PhaseExpired))
			Expect(readyCondition(expired).Reason).To(Equal(invitesv1alpha1.InvitationExpiredReason))
			Expect(readyCondition(expired).Message).To(ContainSubstring(invitesv1alpha1.ResendAnnotation))
		})

		It("uses the manager's default lifetime when expiresAfter is unset", func(ctx SpecContext) {
			inv := newInvitation(ns, "default-lifetime", func(i *invitesv1alpha1.Invitation) { i.Spec.ExpiresAfter = nil })
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			Expect(active.Status.ExpiresAt.Sub(active.Status.IssuedAt.Time)).To(Equal(72 * time.Hour))
		})
	})

	Context("when every use is redeemed", func() {
		It("becomes Exhausted, and Active again if maxUses is raised", func(ctx SpecContext) {
			inv := newInvitation(ns, "popular", func(i *invitesv1alpha1.Invitation) { i.Spec.MaxUses = 2 })
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)

			// What the redemption server does: claim a use in status.
			Expect(k8sClient.Status().Patch(ctx, active, mergePatch(`{"status":{"uses":2}}`))).To(Succeed())
			exhausted := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseExhausted)
			Expect(exhausted.Status.UsesSummary).To(Equal("2/2"))
			Expect(readyCondition(exhausted).Reason).To(Equal(invitesv1alpha1.InvitationExhaustedReason))

			Expect(k8sClient.Patch(ctx, exhausted, mergePatch(`{"spec":{"maxUses":3}}`))).To(Succeed())
			Expect(eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive).Status.UsesSummary).To(Equal("2/3"))
		})
	})

	Context("when revoked", func() {
		It("becomes Revoked for good", func(ctx SpecContext) {
			inv := newInvitation(ns, "regret")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			Expect(k8sClient.Patch(ctx, active, mergePatch(`{"spec":{"revoked":true}}`))).To(Succeed())
			revoked := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseRevoked)
			Expect(readyCondition(revoked).Reason).To(Equal(invitesv1alpha1.InvitationRevokedReason))

			Expect(k8sClient.Patch(ctx, revoked, mergePatch(`{"spec":{"revoked":false}}`))).To(MatchError(ContainSubstring("revoked cannot be undone")))
		})

		It("issues no token when created revoked", func(ctx SpecContext) {
			inv := newInvitation(ns, "stillborn", func(i *invitesv1alpha1.Invitation) { i.Spec.Revoked = true })
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			revoked := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseRevoked)
			Expect(revoked.Status.TokenSecretRef).To(BeNil())
		})
	})

	Context("when a resend is asked for", func() {
		It("rotates the token: the old one is gone from the Secret, and the expiry starts over", func(ctx SpecContext) {
			inv := newInvitation(ns, "again")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			first := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			oldValue := string(issuedSecret(ctx, first).Data[invitesv1alpha1.TokenSecretKey])

			fakeClock.Step(10 * time.Minute)
			Expect(k8sClient.Patch(ctx, first, mergePatch(`{"metadata":{"annotations":{"`+invitesv1alpha1.ResendAnnotation+`":"1"}}}`))).To(Succeed())

			Eventually(func(g Gomega) {
				latest := getInvitation(ctx, g, inv)
				g.Expect(latest.Status.ObservedResend).To(Equal("1"))
				g.Expect(latest.Status.TokenID).NotTo(Equal(first.Status.TokenID))
				g.Expect(latest.Status.IssuedAt.Time).To(Equal(first.Status.IssuedAt.Add(10 * time.Minute)))
				secret := tokenSecret(ctx, g, latest)
				g.Expect(string(secret.Data[invitesv1alpha1.TokenSecretKey])).NotTo(Equal(oldValue))
				g.Expect(string(secret.Data[invitesv1alpha1.URLSecretKey])).NotTo(ContainSubstring(oldValue))
				g.Expect(meta.FindStatusCondition(latest.Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition).Reason).
					To(Equal(invitesv1alpha1.InvitationTokenRotatedReason))
			}).Should(Succeed())
		})

		It("rotates only once per annotation value", func(ctx SpecContext) {
			inv := newInvitation(ns, "once", func(i *invitesv1alpha1.Invitation) {
				i.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "x"}
			})
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			value := string(issuedSecret(ctx, active).Data[invitesv1alpha1.TokenSecretKey])
			reconcileNow(ctx, inv)
			reconcileNow(ctx, inv)
			Consistently(func(g Gomega) string {
				return string(tokenSecret(ctx, g, getInvitation(ctx, g, inv)).Data[invitesv1alpha1.TokenSecretKey])
			}, "2s").Should(Equal(value))
		})
	})

	Context("with a Custom token", func() {
		customSecret := func(name, value string, labeled bool) *corev1.Secret {
			s := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Data:       map[string][]byte{invitesv1alpha1.TokenSecretKey: []byte(value)},
			}
			if labeled {
				s.Labels = map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}
			}
			return s
		}
		custom := func(i *invitesv1alpha1.Invitation) {
			i.Spec.TokenType = invitesv1alpha1.TokenTypeCustom
			i.Spec.CustomTokenSecretRef = &invitesv1alpha1.SecretReference{Name: "beta-code"}
		}
		// Every token belongs to one invitation in the whole cluster, so each spec's is its own.
		var strong string
		BeforeEach(func() { strong = "q3F9xZ0bK8Lw2mNcT7vYh1RjUe4sGa-" + ns })

		It("stays Pending until the Secret exists, says what it waits for, then becomes Active", func(ctx SpecContext) {
			inv := newInvitation(ns, "beta", custom)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			pending := eventuallyPhase(ctx, inv, invitesv1alpha1.PhasePending)
			Expect(readyCondition(pending).Reason).To(Equal(invitesv1alpha1.InvitationCustomTokenMissingReason))
			Expect(readyCondition(pending).Message).To(ContainSubstring("waiting for Secret beta-code"))

			Expect(k8sClient.Create(ctx, customSecret("beta-code", strong, true))).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			Expect(active.Status.TokenID).To(HaveLen(8))
			Expect(string(issuedSecret(ctx, active).Data[invitesv1alpha1.TokenSecretKey])).To(Equal(strong))
		})

		It("says which label it waits for, in the same words whether an unlabeled Secret exists or not", func(ctx SpecContext) {
			Expect(k8sClient.Create(ctx, customSecret("beta-code", strong, false))).To(Succeed())
			inv := newInvitation(ns, "beta", custom)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			absent := newInvitation(ns, "gamma", custom, func(i *invitesv1alpha1.Invitation) {
				i.Spec.CustomTokenSecretRef.Name = "no-such-secret"
			})
			Expect(k8sClient.Create(ctx, absent)).To(Succeed())
			Eventually(func(g Gomega) {
				cond := readyCondition(getInvitation(ctx, g, inv))
				g.Expect(cond).NotTo(BeNil())
				g.Expect(cond.Reason).To(Equal(invitesv1alpha1.InvitationCustomTokenMissingReason))
				g.Expect(cond.Message).To(ContainSubstring(invitesv1alpha1.TokenLabel + "=custom"))
				other := readyCondition(getInvitation(ctx, g, absent))
				g.Expect(other).NotTo(BeNil())
				g.Expect(other.Message).To(Equal(strings.Replace(cond.Message, "beta-code", "no-such-secret", 1)),
					"readers of an invitation learn nothing about Secrets they may not see")
			}).Should(Succeed())
		})

		It("refuses a token weaker than 64 bits, with the reason", func(ctx SpecContext) {
			Expect(k8sClient.Create(ctx, customSecret("beta-code", "welcome2024", true))).To(Succeed())
			inv := newInvitation(ns, "beta", custom)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			pending := eventuallyPhase(ctx, inv, invitesv1alpha1.PhasePending)
			Expect(readyCondition(pending).Reason).To(Equal(invitesv1alpha1.InvitationCustomTokenWeakReason))
			Expect(readyCondition(pending).Message).To(ContainSubstring("too easy to guess"))
			Expect(pending.Status.TokenSecretRef).To(BeNil())
		})

		It("withdraws the copied token when the user's Secret is deleted", func(ctx SpecContext) {
			source := customSecret("beta-code", strong, true)
			Expect(k8sClient.Create(ctx, source)).To(Succeed())
			inv := newInvitation(ns, "beta", custom)
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
			secretName := active.Status.TokenSecretRef.Name

			Expect(k8sClient.Delete(ctx, source)).To(Succeed())
			eventuallyPhase(ctx, inv, invitesv1alpha1.PhasePending)
			Eventually(func() error {
				return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: secretName}, &corev1.Secret{})
			}).Should(MatchError(ContainSubstring("not found")))
		})
	})

	Context("when a Secret of the same name already belongs to someone else", func() {
		It("leaves it alone and says so", func(ctx SpecContext) {
			foreign := &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "taken-invitation-token",
					Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelIssued}},
				Data: map[string][]byte{"keep": []byte("me")},
			}
			Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
			inv := newInvitation(ns, "taken")
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			pending := eventuallyPhase(ctx, inv, invitesv1alpha1.PhasePending)
			Expect(readyCondition(pending).Message).To(ContainSubstring("not owned by this invitation"))
			Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), foreign)).To(Succeed())
			Expect(foreign.Data).To(HaveKeyWithValue("keep", []byte("me")))
		})
	})
})

var _ = Describe("Invitation controller and policy", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("issues no token for an invitation nobody vouches for", func(ctx SpecContext) {
		inv := newInvitation(ns, "orphan", func(i *invitesv1alpha1.Invitation) { i.Spec.Inviter = nil })
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		denied := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseDenied)
		Expect(readyCondition(denied).Reason).To(Equal(invitesv1alpha1.InvitationNoInviterReason))
		Expect(readyCondition(denied).Message).To(ContainSubstring("created without rolecall's admission webhook"))
		Expect(denied.Status.TokenSecretRef).To(BeNil())
	})

	It("stops an invitation whose policy is deleted, and resumes it when the policy returns", func(ctx SpecContext) {
		rgp := &invitesv1alpha1.RoleGrantPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "ctl-leads-" + ns},
			Spec: invitesv1alpha1.RoleGrantPolicySpec{
				Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "ctl-leads"}},
				GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}},
			},
		}
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		inv := newInvitation(ns, "delegated", func(i *invitesv1alpha1.Invitation) {
			i.Spec.Inviter = &invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"ctl-leads", "system:authenticated"}}
		})
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		value := string(issuedSecret(ctx, active).Data[invitesv1alpha1.TokenSecretKey])
		allowed := meta.FindStatusCondition(active.Status.Conditions, invitesv1alpha1.InvitationPolicyAllowedCondition)
		Expect(allowed.Message).To(Equal("allowed by RoleGrantPolicy " + rgp.Name))

		Expect(k8sClient.Delete(ctx, rgp)).To(Succeed())
		denied := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseDenied)
		Expect(readyCondition(denied).Reason).To(Equal(invitesv1alpha1.InvitationPolicyDeniedReason))
		Expect(readyCondition(denied).Message).To(ContainSubstring(`no RoleGrantPolicy names user "lee"`))
		Expect(readyCondition(denied).Message).To(ContainSubstring("lee may not create rolebindings in namespace " + ns))

		rgp.ResourceVersion = ""
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		resumed := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		Expect(string(issuedSecret(ctx, resumed).Data[invitesv1alpha1.TokenSecretKey])).To(Equal(value), "the same token works again")
	})
})

var _ = Describe("The manager's Secret cache", func() {
	It("sees only Secrets labeled as tokens", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		plain := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "db-password"}}
		labeled := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "beta-code",
			Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}}}
		Expect(k8sClient.Create(ctx, plain)).To(Succeed())
		Expect(k8sClient.Create(ctx, labeled)).To(Succeed())

		Eventually(func() error {
			return cachedClient.Get(ctx, client.ObjectKeyFromObject(labeled), &corev1.Secret{})
		}).Should(Succeed())
		Consistently(func() error {
			return cachedClient.Get(ctx, client.ObjectKeyFromObject(plain), &corev1.Secret{})
		}, "1s").Should(MatchError(ContainSubstring("not found")))
	})
})
