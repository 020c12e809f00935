package gitops_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// How Argo CD recognises the objects of an application: the label of label-based
// tracking, and the annotation of annotation-based tracking (the default since Argo CD 3).
const (
	argoInstanceLabel      = "app.kubernetes.io/instance"
	argoTrackingAnnotation = "argocd.argoproj.io/tracking-id"
)

// argoKeys lists the keys that Argo CD reads or writes as its own.
func argoKeys(m map[string]string) []string {
	var keys []string
	for key := range m {
		if key == argoInstanceLabel || strings.HasPrefix(key, "argocd.argoproj.io/") {
			keys = append(keys, key)
		}
	}
	return keys
}

var _ = Describe("The token Secret of an invitation synced by Argo CD", func() {
	Context("when the Invitation carries Argo CD's tracking label and annotation", func() {
		It("carries neither, and belongs to the Invitation through its owner reference", func(ctx SpecContext) {
			ns := newNamespace(ctx)
			inv := newInvitation(ns, "tracked", func(i *invitesv1alpha1.Invitation) {
				i.Labels = map[string]string{argoInstanceLabel: "demo"}
				i.Annotations = map[string]string{
					argoTrackingAnnotation:               "demo:invites.rolecall.dev/Invitation:" + ns + "/tracked",
					"argocd.argoproj.io/sync-wave":       "1",
					"argocd.argoproj.io/compare-options": "ServerSideDiff=true",
				}
			})
			Expect(admin.Create(ctx, inv)).To(Succeed())
			healthInPhase(ctx, inv, invitesv1alpha1.PhaseActive)

			secret := &corev1.Secret{}
			Eventually(func(g Gomega) {
				g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "tracked-invitation-token"}, secret)).To(Succeed())
				g.Expect(secret.Data).To(HaveKey(invitesv1alpha1.TokenSecretKey))
			}).Should(Succeed())
			// A tracked copy would make Argo CD list the Secret as part of the application,
			// out of sync with Git, and prune it on the next sync: the token would be gone.
			Expect(argoKeys(secret.Labels)).To(BeEmpty())
			Expect(argoKeys(secret.Annotations)).To(BeEmpty())
			Expect(secret.OwnerReferences).To(ConsistOf(metav1.OwnerReference{
				APIVersion: invitesv1alpha1.GroupVersion.String(), Kind: "Invitation", Name: inv.Name, UID: inv.UID,
				Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
			}))
		})
	})
})
