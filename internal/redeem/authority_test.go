package redeem_test

import (
	"context"
	"net/http"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

// actingAs returns a client for a user who holds exactly these rights in the namespace,
// granted by an administrator the ordinary way.
func actingAs(ctx context.Context, ns, user string, rules ...rbacv1.PolicyRule) client.Client {
	GinkgoHelper()
	c, err := testenv.Actor(ctx, k8sClient, cfg, ns, "attacker-"+user, user, rules...)
	Expect(err).NotTo(HaveOccurred())
	return c
}

var statusWriter = rbacv1.PolicyRule{
	APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations", "invitations/status"},
	Verbs: []string{"get", "list", "watch", "update", "patch"},
}

var secretCreator = rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}}

// editStatus changes an invitation's status as the given client, retrying on conflicts
// with the controller's own writes.
func editStatus(ctx context.Context, c client.Client, inv *invitesv1alpha1.Invitation, edit func(*invitesv1alpha1.InvitationStatus)) {
	GinkgoHelper()
	Eventually(func() error {
		current := &invitesv1alpha1.Invitation{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(inv), current); err != nil {
			return err
		}
		edit(&current.Status)
		return c.Status().Update(ctx, current)
	}).Should(Succeed())
}

// nudge wakes the controller for the invitation, as any change to it would.
func nudge(ctx context.Context, inv *invitesv1alpha1.Invitation, value string) {
	GinkgoHelper()
	Expect(k8sClient.Patch(ctx, inv, client.RawPatch("application/merge-patch+json",
		[]byte(`{"metadata":{"annotations":{"nudge":"`+value+`"}}}`)))).To(Succeed())
}

var _ = Describe("Only a fresh, checked claim makes a grant", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	Context("a user who may create Secrets but not read them", func() {
		It("cannot mint a token by planting a Secret owned by the invitation and labeled like rolecall's", func(ctx SpecContext) {
			inv, tok := issue(ctx, ns)
			mallory := actingAs(ctx, ns, "mallory", secretCreator)
			planted := "plantedx.abcdefghijklmnopqrstuvwxyz234567"
			Expect(mallory.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{
					Namespace: ns, Name: "planted-token",
					Labels:          map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelIssued, invitesv1alpha1.InvitationNameLabel: inv.Name},
					Annotations:     map[string]string{invitesv1alpha1.TokenIDAnnotation: "plantedx"},
					OwnerReferences: []metav1.OwnerReference{*metav1.NewControllerRef(inv, invitesv1alpha1.GroupVersion.WithKind("Invitation"))},
				},
				Data: map[string][]byte{invitesv1alpha1.TokenSecretKey: []byte(planted)},
			})).To(Succeed())

			for _, r := range replicas {
				Consistently(func() int { return redeemAt(ctx, r, person("mallory"), planted).status }).
					WithTimeout(2 * time.Second).Should(Equal(http.StatusNotFound))
			}
			Expect(bindingsOf(ctx, inv)).To(BeEmpty())
			Expect(redeemAt(ctx, replicas[1], person("alice"), tok).status).To(Equal(http.StatusCreated), "the real token still works")
		})
	})

	Context("a user who may patch invitations/status", func() {
		It("cannot make a token current by copying its hash and seal into another invitation's status", func(ctx SpecContext) {
			small, tok := issue(ctx, ns)
			big, _ := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
				s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}, {ClusterRole: "admin"}}
			})
			mallory := actingAs(ctx, ns, "mallory", statusWriter)
			copied := latest(ctx, small).Status
			editStatus(ctx, mallory, big, func(s *invitesv1alpha1.InvitationStatus) {
				s.TokenID, s.TokenHash, s.TokenSeal = copied.TokenID, copied.TokenHash, copied.TokenSeal
				s.IssuedAt, s.ExpiresAt = copied.IssuedAt, copied.ExpiresAt
			})

			a := redeemAt(ctx, replicas[0], person("mallory"), tok)
			Expect(a.status).To(Equal(http.StatusCreated), "%v", a.body)
			Expect(a.body).To(HaveKeyWithValue("invitation", small.Name), "the token redeems only the invitation it was issued for")
			Expect(bindingsOf(ctx, big)).To(BeEmpty())
		})

		It("cannot bring an expired token back by moving expiresAt", func(ctx SpecContext) {
			inv, tok := issue(ctx, ns)
			fakeClock.Step(2 * time.Hour)
			Eventually(func() int { return redeemAt(ctx, replicas[0], person("mallory"), tok).status }).Should(Equal(http.StatusGone))

			mallory := actingAs(ctx, ns, "mallory", statusWriter)
			editStatus(ctx, mallory, inv, func(s *invitesv1alpha1.InvitationStatus) {
				later := metav1.NewTime(fakeClock.Now().Add(10 * time.Hour))
				s.ExpiresAt, s.Phase = &later, invitesv1alpha1.PhaseActive
			})
			for _, r := range replicas {
				Consistently(func() int { return redeemAt(ctx, r, person("mallory"), tok).status }).
					WithTimeout(2 * time.Second).ShouldNot(BeElementOf(http.StatusCreated, http.StatusOK))
			}
			Expect(bindingsOf(ctx, inv)).To(BeEmpty())
		})

		It("cannot grant by writing a pending redemption: the controller never binds for a claim", func(ctx SpecContext) {
			inv, _ := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 3 })
			mallory := actingAs(ctx, ns, "mallory", statusWriter)
			editStatus(ctx, mallory, inv, func(s *invitesv1alpha1.InvitationStatus) {
				s.Uses++
				s.PendingRedemptions = append(s.PendingRedemptions, invitesv1alpha1.PendingRedemption{
					User: "oidc:mallory", ClaimedAt: metav1.NewTime(fakeClock.Now().Add(-time.Minute)),
				})
			})
			fakeClock.Step(time.Minute)
			nudge(ctx, inv, "forged-claim")
			Eventually(func() []invitesv1alpha1.PendingRedemption { return latest(ctx, inv).Status.PendingRedemptions }).
				Should(BeEmpty(), "an entry the redemption server did not seal is dropped")
			Consistently(func() []rbacv1.RoleBinding { return bindingsOf(ctx, inv) }).WithTimeout(2 * time.Second).Should(BeEmpty())
			Expect(can(ctx, "oidc:mallory", "create", ns)).To(BeFalse())
		})

		It("cannot let a token holder past maxUses with a forged pending entry", func(ctx SpecContext) {
			inv, tok := issue(ctx, ns)
			Expect(redeemAt(ctx, replicas[0], person("alice"), tok).status).To(Equal(http.StatusCreated))
			mallory := actingAs(ctx, ns, "mallory", statusWriter)
			editStatus(ctx, mallory, inv, func(s *invitesv1alpha1.InvitationStatus) {
				s.PendingRedemptions = append(s.PendingRedemptions, invitesv1alpha1.PendingRedemption{
					User: "oidc:mallory", ClaimedAt: metav1.NewTime(fakeClock.Now()), Seal: "0123456789abcdef",
				})
			})
			a := redeemAt(ctx, replicas[1], person("mallory"), tok)
			Expect(a.status).To(Equal(http.StatusGone), "%v", a.body)
			Expect(a.body).To(HaveKeyWithValue("code", "exhausted"))
			Expect(can(ctx, "oidc:mallory", "create", ns)).To(BeFalse())
		})
	})

	Context("a person whose grant an administrator removed", func() {
		It("does not get it back by presenting the token again, however soon after redeeming", func(ctx SpecContext) {
			inv, tok := issue(ctx, ns)
			bob := person("bob")
			Expect(redeemAt(ctx, replicas[0], bob, tok).status).To(Equal(http.StatusCreated))
			// Deleted at once: the claim may still be pending.
			Expect(k8sClient.DeleteAllOf(ctx, &rbacv1.RoleBinding{}, client.InNamespace(ns),
				client.MatchingLabels{"invites.rolecall.dev/invitation-uid": string(inv.UID)})).To(Succeed())

			for _, r := range replicas {
				a := redeemAt(ctx, r, bob, tok)
				Expect(a.status).To(BeElementOf(http.StatusConflict, http.StatusGone), "%v", a.body)
			}
			Eventually(func() []invitesv1alpha1.PendingRedemption { return latest(ctx, inv).Status.PendingRedemptions }).
				Should(BeEmpty(), "the server that made the bindings clears its claim: it knows they existed")
			fakeClock.Step(31 * time.Second)
			nudge(ctx, inv, "after-grace")
			Consistently(func() int32 { return latest(ctx, inv).Status.Uses }).WithTimeout(time.Second).
				Should(BeEquivalentTo(1), "the use was taken and stays taken: nothing is given back")
			a := redeemAt(ctx, replicas[1], bob, tok)
			Expect(a.body).To(HaveKeyWithValue("code", "grants_removed"))
			Expect(bindingsOf(ctx, inv)).To(BeEmpty())
		})

		It("does not keep it alive by re-sending the token in a loop while it is deleted", func(ctx SpecContext) {
			inv, tok := issue(ctx, ns)
			bob := person("bob")
			Expect(redeemAt(ctx, replicas[0], bob, tok).status).To(Equal(http.StatusCreated))

			stop := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			statuses := map[int]int{}
			for i := range 8 {
				wg.Go(func() {
					defer GinkgoRecover()
					for {
						select {
						case <-stop:
							return
						default:
						}
						s := redeemAt(ctx, replicas[i%2], bob, tok).status
						mu.Lock()
						statuses[s]++
						mu.Unlock()
					}
				})
			}
			time.Sleep(300 * time.Millisecond)
			Expect(k8sClient.DeleteAllOf(ctx, &rbacv1.RoleBinding{}, client.InNamespace(ns),
				client.MatchingLabels{"invites.rolecall.dev/invitation-uid": string(inv.UID)})).To(Succeed())
			Consistently(func() []rbacv1.RoleBinding { return bindingsOf(ctx, inv) }).WithTimeout(3 * time.Second).Should(BeEmpty())
			close(stop)
			wg.Wait()
			Expect(statuses).NotTo(HaveKey(http.StatusInternalServerError), "a binding deleted under a redemption is never a 500")
			Expect(statuses).NotTo(HaveKey(http.StatusCreated), "no new claim for a person the invitation counted")
		})
	})
})
