package controllers_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

func newPolicy(rules ...invitesv1alpha1.PolicyRule) *invitesv1alpha1.RoleGrantPolicy {
	return &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "policy-"},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "team-leads"}},
			GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}},
			Rules:          rules,
		},
	}
}

func eventuallyPolicyReady(ctx context.Context, rgp *invitesv1alpha1.RoleGrantPolicy) *metav1.Condition {
	var cond *metav1.Condition
	Eventually(func(g Gomega) {
		latest := &invitesv1alpha1.RoleGrantPolicy{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(rgp), latest)).To(Succeed())
		g.Expect(latest.Status.ObservedGeneration).To(Equal(latest.Generation))
		cond = meta.FindStatusCondition(latest.Status.Conditions, invitesv1alpha1.PolicyReadyCondition)
		g.Expect(cond).NotTo(BeNil())
	}).Should(Succeed())
	return cond
}

var _ = Describe("RoleGrantPolicy controller", func() {
	It("reports Ready when its rules compile", func(ctx SpecContext) {
		rgp := newPolicy(invitesv1alpha1.PolicyRule{
			Expression: "invitation.spec.maxUses <= 5 || 'platform' in inviter.groups",
			Message:    "only platform may create invitations with more than 5 uses",
		})
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		cond := eventuallyPolicyReady(ctx, rgp)
		Expect(cond.Status).To(Equal(metav1.ConditionTrue))
		Expect(cond.Reason).To(Equal(invitesv1alpha1.PolicyCompiledReason))
	})

	DescribeTable("reports the compile error of a rule it cannot use, naming the rule",
		func(ctx SpecContext, expression, why string) {
			rgp := newPolicy(
				invitesv1alpha1.PolicyRule{Expression: "true", Message: "fine"},
				invitesv1alpha1.PolicyRule{Expression: expression, Message: "broken"},
			)
			Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
			cond := eventuallyPolicyReady(ctx, rgp)
			Expect(cond.Status).To(Equal(metav1.ConditionFalse))
			Expect(cond.Reason).To(Equal(invitesv1alpha1.PolicyInvalidRuleReason))
			Expect(cond.Message).To(ContainSubstring("spec.rules[1].expression"))
			Expect(cond.Message).To(ContainSubstring(why))
		},
		Entry("syntax error", "invitation.spec.maxUses <=", "does not compile"),
		Entry("unknown variable", "user.name == 'bob'", "undeclared reference"),
		Entry("not a bool", "invitation.spec.maxUses + 1 == 2 ? 'yes' : 'no'", "must return a bool"),
	)

	It("reports limits that contradict each other, which evaluation refuses too, created while admission did not check them", func(ctx SpecContext) {
		rgp := newPolicy()
		rgp.Spec.GrantableRoles = []invitesv1alpha1.GrantableRole{{Role: "deployer"}}
		rgp.Spec.AllowClusterWide = true
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		cond := eventuallyPolicyReady(ctx, rgp)
		Expect(cond.Status).To(Equal(metav1.ConditionFalse))
		Expect(cond.Reason).To(Equal(invitesv1alpha1.PolicyInvalidReason))
		Expect(cond.Message).To(ContainSubstring("spec.allowClusterWide"))
	})

	It("becomes Ready once a broken rule is fixed", func(ctx SpecContext) {
		rgp := newPolicy(invitesv1alpha1.PolicyRule{Expression: "(", Message: "broken"})
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		Expect(eventuallyPolicyReady(ctx, rgp).Status).To(Equal(metav1.ConditionFalse))

		Expect(k8sClient.Patch(ctx, rgp, mergePatch(`{"spec":{"rules":[{"expression":"true","message":"broken"}]}}`))).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(eventuallyPolicyReady(ctx, rgp).Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
	})
})
