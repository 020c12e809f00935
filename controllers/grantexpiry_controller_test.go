package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/controllers"
	"github.com/rolecall/rolecall/internal/bindings"
)

var _ = Describe("Grant expiry", func() {
	It("schedules the end of a grant and deletes its binding then, saying so on the invitation", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "temporary", func(i *invitesv1alpha1.Invitation) {
			i.Spec.GrantDuration = &metav1.Duration{Duration: 24 * time.Hour}
		})
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)

		// What a redemption does.
		expiresAt := bindings.ExpiresAt(inv, fakeClock.Now())
		made, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:temp", fakeClock.Now())
		Expect(err).NotTo(HaveOccurred())
		key := client.ObjectKey{Namespace: made[0].Namespace, Name: made[0].Name}
		rb := &rbacv1.RoleBinding{}
		Expect(k8sClient.Get(ctx, key, rb)).To(Succeed())
		Expect(rb.Annotations).To(HaveKeyWithValue(invitesv1alpha1.ExpiresAtAnnotation, expiresAt.Format(time.RFC3339)))

		expiry := &controllers.GrantExpiryReconciler{Client: k8sClient, Recorder: events.NewFakeRecorder(10), Clock: fakeClock, Sealer: sealer,
			Object: &rbacv1.RoleBinding{}, Kind: "RoleBinding"}
		result, err := expiry.Reconcile(ctx, ctrl.Request{NamespacedName: key})
		Expect(err).NotTo(HaveOccurred())
		Expect(result.RequeueAfter).To(Equal(expiresAt.Sub(fakeClock.Now())), "woken exactly when the grant ends")

		fakeClock.Step(24 * time.Hour)
		// The manager's own reconciler is woken by any change to the binding.
		Expect(k8sClient.Patch(ctx, rb, mergePatch(`{"metadata":{"labels":{"nudge":"1"}}}`))).To(Succeed())
		Eventually(func() error { return k8sClient.Get(ctx, key, &rbacv1.RoleBinding{}) }).Should(MatchError(ContainSubstring("not found")))
		Eventually(func(g Gomega) {
			var list eventsv1.EventList
			g.Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			g.Expect(list.Items).To(ContainElement(HaveField("Reason", "GrantExpired")))
		}).Should(Succeed())
	})

	It("leaves bindings without an end alone", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		inv := newInvitation(ns, "lasting")
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		inv = eventuallyPhase(ctx, inv, invitesv1alpha1.PhaseActive)
		made, err := bindings.Ensure(ctx, k8sClient, sealer, inv, "oidc:stays", time.Now())
		Expect(err).NotTo(HaveOccurred())
		fakeClock.Step(1000 * time.Hour)
		Consistently(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: made[0].Namespace, Name: made[0].Name}, &rbacv1.RoleBinding{})
		}, "1s").Should(Succeed())
	})
})
