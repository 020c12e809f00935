package controllers_test

import (
	"context"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

// namespaceAdmin returns a client for a user who may manage RoleBindings and Secrets in the
// namespace and bind the view ClusterRole there: what a namespace admin holds, and all a
// forger of rolecall's bindings needs.
func namespaceAdmin(ctx context.Context, ns, user string) client.Client {
	GinkgoHelper()
	c, err := testenv.Actor(ctx, k8sClient, cfg, ns, "namespace-admin", user,
		rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"get", "list", "create", "update", "patch", "delete"}},
		rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"view"}},
		rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get", "create", "update", "patch"}},
	)
	Expect(err).NotTo(HaveOccurred())
	return c
}

// lookalike is a RoleBinding dressed as one rolecall made for the invitation: its label,
// annotations, idpGroup and finalizer, and a seal copied from a real one.
func lookalike(inv *invitesv1alpha1.Invitation, name, user, group, seal string) *rbacv1.RoleBinding {
	return &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: inv.Namespace, Name: name,
			Labels: map[string]string{
				invitesv1alpha1.ManagedByLabel: invitesv1alpha1.ManagedByValue, invitesv1alpha1.InvitationUIDLabel: string(inv.UID),
				invitesv1alpha1.UserLabel: bindings.UserHash(user),
			},
			Annotations: map[string]string{
				invitesv1alpha1.UsernameAnnotation: user, invitesv1alpha1.InvitationAnnotation: inv.Namespace + "/" + inv.Name,
				invitesv1alpha1.IDPGroupAnnotation: group, invitesv1alpha1.ExpiresAtAnnotation: "2000-01-01T00:00:00Z",
				invitesv1alpha1.SealAnnotation: seal,
			},
			Finalizers: []string{invitesv1alpha1.IDPGroupFinalizer},
		},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "view"},
	}
}

var _ = Describe("Bindings rolecall did not make", func() {
	It("drive no identity provider hook, expire nothing and report nothing, even with a seal copied from a real one", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		group := "admins-" + ns
		allowIDPGroups(ctx, ns, "viewers-"+ns)
		inv := newInvitation(ns, "team", func(i *invitesv1alpha1.Invitation) {
			i.Spec.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", IDPGroup: "viewers-" + ns}}
		})
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		made, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:bob", time.Now())
		Expect(err).NotTo(HaveOccurred())
		real := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: made[0].Name}, real)).To(Succeed())
		Eventually(func() []map[string]any { return idp.callsFor("user", "oidc:bob") }).Should(HaveLen(1))

		mallory := namespaceAdmin(ctx, ns, "mallory")
		Expect(mallory.Create(ctx, lookalike(inv, "forged", "oidc:mallory", group, "deadbeef"))).To(Succeed())
		Expect(mallory.Create(ctx, lookalike(inv, "copied-seal", "oidc:mallory", group, real.Annotations[invitesv1alpha1.SealAnnotation]))).To(Succeed())

		Consistently(func() []map[string]any { return idp.callsFor("user", "oidc:mallory") }).
			WithTimeout(2*time.Second).Should(BeEmpty(), "no signed add of a user the manager never granted")
		Expect(idp.callsFor("group", group)).To(BeEmpty())
		for _, name := range []string{"forged", "copied-seal"} {
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &rbacv1.RoleBinding{})).To(Succeed(),
				"an expiry it did not seal is not rolecall's to enforce")
		}
		cond := meta.FindStatusCondition(getInvitation(ctx, Default, inv).Status.Conditions, invitesv1alpha1.InvitationIDPGroupsCondition)
		Expect(cond).NotTo(BeNil())
		Expect(cond.Message).NotTo(ContainSubstring("mallory"), "nothing is written on an invitation for a binding rolecall did not make")

		By("the forged bindings are left to their owner; the finalizer is theirs to remove")
		for _, name := range []string{"forged", "copied-seal"} {
			Expect(mallory.Patch(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}},
				mergePatch(`{"metadata":{"finalizers":null}}`))).To(Succeed())
		}
	})

	It("are never adopted: a redemption whose binding name is taken grants nothing through it", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "taken", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}} })
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		name := bindings.Describe(inv, "oidc:carol")[0].Name
		squatter := lookalike(inv, name, "oidc:carol", "", "")
		squatter.Finalizers = nil
		Expect(namespaceAdmin(ctx, ns, "mallory").Create(ctx, squatter)).To(Succeed())

		_, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:carol", time.Now())
		Expect(err).To(MatchError(bindings.ErrConflict))
		held, err := bindings.Holds(ctx, k8sClient, sealer, inv, "oidc:carol")
		Expect(err).NotTo(HaveOccurred())
		Expect(held).To(BeFalse())
	})
})

var _ = Describe("Custom token references", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })
	strong := "3f9a7c21-b8e4-4d6f-a0c2-71e5d9b3f804"

	custom := func(secret string) func(*invitesv1alpha1.Invitation) {
		return func(i *invitesv1alpha1.Invitation) {
			i.Spec.TokenType = invitesv1alpha1.TokenTypeCustom
			i.Spec.CustomTokenSecretRef = &invitesv1alpha1.SecretReference{Name: secret}
		}
	}

	It("never copy another invitation's issued token", func(ctx SpecContext) {
		victim := newInvitation(ns, "victim", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants = []invitesv1alpha1.Grant{{ClusterRole: "admin"}} })
		Expect(k8sClient.Create(ctx, victim)).To(Succeed())
		victim = eventuallyPhase(ctx, victim, invitesv1alpha1.PhaseActive)

		copycat := newInvitation(ns, "copycat", custom(victim.Status.TokenSecretRef.Name))
		Expect(k8sClient.Create(ctx, copycat)).To(Succeed())
		pending := eventuallyPhase(ctx, copycat, invitesv1alpha1.PhasePending)
		Expect(readyCondition(pending).Reason).To(Equal(invitesv1alpha1.InvitationCustomTokenMissingReason))
		Expect(pending.Status.TokenHash).To(BeEmpty())
		Consistently(func(g Gomega) string { return getInvitation(ctx, g, copycat).Status.TokenHash }).
			WithTimeout(time.Second).Should(BeEmpty())
	})

	It("never give two invitations one token: the second waits, saying why", func(ctx SpecContext) {
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "shared", Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}},
			Data:       map[string][]byte{invitesv1alpha1.TokenSecretKey: []byte(strong)},
		})).To(Succeed())
		first := newInvitation(ns, "first", custom("shared"))
		Expect(k8sClient.Create(ctx, first)).To(Succeed())
		eventuallyPhase(ctx, first, invitesv1alpha1.PhaseActive)

		second := newInvitation(ns, "second", custom("shared"))
		Expect(k8sClient.Create(ctx, second)).To(Succeed())
		pending := eventuallyPhase(ctx, second, invitesv1alpha1.PhasePending)
		Expect(readyCondition(pending).Reason).To(Equal(invitesv1alpha1.InvitationCustomTokenInUseReason))
		Expect(pending.Status.TokenHash).To(BeEmpty())
	})
})

var _ = Describe("A token Secret edited by someone who may write Secrets", func() {
	It("is replaced by a new token, and the invitation's life is not extended", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "edited")
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		secret := issuedSecret(ctx, inv)
		fakeClock.Step(10 * time.Minute)

		mallory := namespaceAdmin(ctx, ns, "mallory")
		Expect(mallory.Patch(ctx, secret, mergePatch(`{"stringData":{"token":"mallorys.abcdefghijklmnopqrstuvwxyz234567"}}`))).To(Succeed())
		Eventually(func(g Gomega) {
			after := getInvitation(ctx, g, inv)
			g.Expect(after.Status.TokenID).NotTo(Equal(inv.Status.TokenID), "a new token replaces the one the Secret lost")
			g.Expect(after.Status.ExpiresAt.Time).To(BeTemporally("==", inv.Status.ExpiresAt.Time))
			g.Expect(after.Status.TokenHash).NotTo(BeEmpty())
		}).Should(Succeed())
	})
})

var _ = Describe("A policy's maxLifetime", func() {
	It("caps when the token expires, counted from the invitation's creation", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		rgp := newPolicy()
		rgp.Spec.Inviters = []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "leads-" + ns}}
		rgp.Spec.Limits = &invitesv1alpha1.PolicyLimits{MaxLifetime: &metav1.Duration{Duration: 30 * time.Minute}}
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		DeferCleanup(func(ctx SpecContext) { Expect(k8sClient.Delete(ctx, rgp)).To(Succeed()) })

		inv := newInvitation(ns, "short-lived", func(i *invitesv1alpha1.Invitation) {
			i.Spec.Inviter = &invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"leads-" + ns, "system:authenticated"}}
		})
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		// The suite's clock runs ahead of the API server's, so the phase may already be
		// Expired; the expiry itself is what the policy decides.
		Eventually(func(g Gomega) {
			issued := getInvitation(ctx, g, inv)
			g.Expect(issued.Status.ExpiresAt).NotTo(BeNil())
			g.Expect(issued.Status.ExpiresAt.Time).To(BeTemporally("==", issued.CreationTimestamp.Add(30*time.Minute)),
				"expiresAfter asks for an hour; the policy allows 30 minutes from creation")
		}).Should(Succeed())
	})
})

var _ = Describe("Delivery", func() {
	It("never mails a link someone wrote: not through status naming a planted Secret, not through an edited one", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		address := "victim@" + ns + ".example.com"
		inv := newInvitation(ns, "mailed", byEmail(address))
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		delivered(ctx, inv, invitesv1alpha1.InvitationDeliveredReason)

		mallory := namespaceAdmin(ctx, ns, "mallory")
		current := getInvitation(ctx, Default, inv)
		Expect(mallory.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: ns, Name: "phish",
				Labels:      map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelIssued},
				Annotations: map[string]string{invitesv1alpha1.TokenIDAnnotation: current.Status.TokenID},
			},
			StringData: map[string]string{"token": "phishing.abcdefghijklmnopqrstuvwxyz234567", "url": "https://evil.test/i/phishing"},
		})).To(Succeed())
		writer := statusWriter(ctx, ns, "eve")
		Eventually(func() error {
			latest := getInvitation(ctx, Default, inv)
			patch := client.MergeFrom(latest.DeepCopy())
			latest.Status.TokenSecretRef = &invitesv1alpha1.ObjectReference{Name: "phish"}
			latest.Status.DeliveredAt = nil
			meta.RemoveStatusCondition(&latest.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
			return writer.Status().Patch(ctx, latest, patch)
		}).Should(Succeed())
		Expect(mallory.Patch(ctx, tokenSecretOf(ctx, current), mergePatch(`{"stringData":{"url":"https://evil.test/i/edited"}}`))).To(Succeed())

		Consistently(func(g Gomega) {
			for _, m := range mailsTo(ctx, g, address) {
				g.Expect(m.Text + m.HTML).NotTo(ContainSubstring("evil.test"))
			}
		}).WithTimeout(3 * time.Second).Should(Succeed())
	})
})

var _ = Describe("Identity provider memberships, against someone who may edit bindings", func() {
	var ns, group string
	var inv *invitesv1alpha1.Invitation
	var key client.ObjectKey
	var mallory client.Client
	// The use was claimed a while ago, as far as the window in which a redemption makes its
	// bindings allows: a copy made a few seconds later is past that window.
	claimedAt := func() time.Time { return time.Now().Add(-25 * time.Second) }
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		group = "viewers-" + ns
		allowIDPGroups(ctx, ns, group)
		inv = newInvitation(ns, "grouped", func(i *invitesv1alpha1.Invitation) {
			i.Spec.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", IDPGroup: group}}
		})
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		made, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:pat", claimedAt())
		Expect(err).NotTo(HaveOccurred())
		key = client.ObjectKey{Namespace: ns, Name: made[0].Name}
		Eventually(func() []map[string]any { return idp.callsFor("group", group) }).Should(ConsistOf(HaveKeyWithValue("action", "add")))
		Eventually(func(g Gomega) {
			rb := &rbacv1.RoleBinding{}
			g.Expect(k8sClient.Get(ctx, key, rb)).To(Succeed())
			g.Expect(rb.Annotations).To(HaveKey(invitesv1alpha1.IDPGroupAddedAnnotation))
		}).Should(Succeed())
		mallory = namespaceAdmin(ctx, ns, "mallory")
	})

	removed := func() []map[string]any {
		var out []map[string]any
		for _, call := range idp.callsFor("group", group) {
			if call["action"] == "remove" {
				out = append(out, call)
			}
		}
		return out
	}

	It("end when the binding is deleted after its finalizer was stripped", func(ctx SpecContext) {
		rb := &rbacv1.RoleBinding{ObjectMeta: objectMeta(key)}
		Expect(mallory.Patch(ctx, rb, mergePatch(`{"metadata":{"finalizers":null}}`))).To(Succeed())
		Expect(mallory.Delete(ctx, rb)).To(Succeed())
		Eventually(removed).Should(ConsistOf(HaveKeyWithValue("user", "oidc:pat")))
	})

	It("end when the binding is deleted after its record of the add and its subjects were stripped", func(ctx SpecContext) {
		rb := &rbacv1.RoleBinding{ObjectMeta: objectMeta(key)}
		Expect(mallory.Patch(ctx, rb, mergePatch(`{"metadata":{"annotations":{"`+invitesv1alpha1.IDPGroupAddedAnnotation+`":null}},"subjects":[]}`))).To(Succeed())
		Expect(mallory.Delete(ctx, rb)).To(Succeed())
		Eventually(removed).Should(ConsistOf(HaveKeyWithValue("user", "oidc:pat")))
	})

	It("do not come back when a copy of the sealed binding is created after it was taken away", func(ctx SpecContext) {
		original := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, key, original)).To(Succeed())
		Expect(k8sClient.Delete(ctx, original)).To(Succeed())
		Eventually(removed).Should(HaveLen(1))
		Eventually(func() error { return k8sClient.Get(ctx, key, &rbacv1.RoleBinding{}) }).Should(MatchError(ContainSubstring("not found")))

		// A copy with every label, annotation and the seal of the original, made once the
		// moments after the claim in which a redemption binds are over.
		time.Sleep(6 * time.Second)
		copied := &rbacv1.RoleBinding{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: key.Name, Labels: original.Labels, Annotations: original.Annotations},
			Subjects:   original.Subjects, RoleRef: original.RoleRef,
		}
		delete(copied.Annotations, invitesv1alpha1.IDPGroupAddedAnnotation)
		Expect(bindings.Sealed(sealer, copied)).To(BeTrue(), "the copy carries a valid seal")
		Expect(mallory.Create(ctx, copied)).To(Succeed())
		Consistently(func() []map[string]any { return idp.callsFor("group", group) }).WithTimeout(2*time.Second).
			Should(HaveLen(2), "the add and the remove, and no second add")
	})
})

var _ = Describe("A token's life", func() {
	It("is not restarted by wiping status: the invitation waits for a resend, which starts a new one", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "wiped")
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		fakeClock.Step(10 * time.Minute)

		writer := statusWriter(ctx, ns, "mallory")
		Eventually(func() error {
			latest := getInvitation(ctx, Default, inv)
			patch := client.MergeFrom(latest.DeepCopy())
			latest.Status.TokenID, latest.Status.TokenHash, latest.Status.TokenSeal = "", "", ""
			latest.Status.IssuedAt, latest.Status.ExpiresAt = nil, nil
			return writer.Status().Patch(ctx, latest, patch)
		}).Should(Succeed())
		blocked := eventuallyPhase(ctx, inv, invitesv1alpha1.PhasePending)
		Expect(readyCondition(blocked).Reason).To(Equal(invitesv1alpha1.InvitationStatusEditedReason))
		Expect(blocked.Status.TokenID).To(BeEmpty())

		By("an authorized resend issues a new token, whose life starts now")
		Expect(k8sClient.Patch(ctx, inv, mergePatch(`{"metadata":{"annotations":{"`+invitesv1alpha1.ResendAnnotation+`":"after-wipe"}}}`))).To(Succeed())
		active := eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		Expect(active.Status.TokenID).NotTo(BeEmpty())
		Expect(active.Status.ExpiresAt.Time).To(BeTemporally("==", fakeClock.Now().Truncate(time.Second).Add(time.Hour)))
	})
})

var _ = Describe("An invitation in a namespace being deleted", func() {
	It("gets no new token when its token Secret goes: nothing churns while the namespace goes", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "leaving")
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		secret := issuedSecret(ctx, inv)

		// envtest runs no namespace controller: the namespace stays Terminating, as it does
		// while a real one deletes what it holds.
		Expect(k8sClient.Delete(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})).To(Succeed())
		Eventually(func(g Gomega) corev1.NamespacePhase {
			got := &corev1.Namespace{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Name: ns}, got)).To(Succeed())
			return got.Status.Phase
		}).Should(Equal(corev1.NamespaceTerminating))
		Expect(k8sClient.Delete(ctx, secret)).To(Succeed())
		Consistently(func(g Gomega) string { return getInvitation(ctx, g, inv).Status.TokenID }).
			WithTimeout(2 * time.Second).Should(Equal(inv.Status.TokenID))
	})
})
