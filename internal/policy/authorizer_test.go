package policy_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

var _ = Describe("The authorizer's RBAC delegation", func() {
	// An API server stand-in that answers every SubjectAccessReview with allowed and
	// counts the questions.
	var asked int
	newAuthorizer := func() *policy.Authorizer {
		scheme := runtime.NewScheme()
		Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
		Expect(invitesv1alpha1.AddToScheme(scheme)).To(Succeed())
		c := fake.NewClientBuilder().WithScheme(scheme).
			WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}).
			WithIndex(&invitesv1alpha1.Invitation{}, policy.InviterIndex, policy.InviterIndexValue).
			WithInterceptorFuncs(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if sar, ok := obj.(*authorizationv1.SubjectAccessReview); ok {
					asked++
					sar.Status.Allowed = true
					return nil
				}
				return c.Create(ctx, obj, opts...)
			}}).Build()
		asked = 0
		return &policy.Authorizer{Reader: c, Writer: c, AllowRBACDelegation: true}
	}

	It("asks for the create and bind rights of each grant, and remembers the answers briefly", func(ctx SpecContext) {
		a := newAuthorizer()
		inv := invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit"}, {ClusterRole: "view"}}
		})
		d, err := a.Authorize(ctx, inv, stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Allowed).To(BeTrue())
		Expect(d.AllowedBy).To(Equal(policy.DelegationName))
		Expect(asked).To(Equal(3), "create rolebindings once, bind edit, bind view")

		_, err = a.Authorize(ctx, inv, stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(asked).To(Equal(3), "a second pass is answered from memory")

		_, err = a.Authorize(ctx, inv, teamLead)
		Expect(err).NotTo(HaveOccurred())
		Expect(asked).To(Equal(6), "another person is another question")
	})

	It("does not ask when delegation is off", func(ctx SpecContext) {
		a := newAuthorizer()
		a.AllowRBACDelegation = false
		d, err := a.Authorize(ctx, invitation(), stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Allowed).To(BeFalse())
		Expect(asked).To(BeZero())
	})
})
