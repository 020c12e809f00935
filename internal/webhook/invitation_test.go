package webhook_test

import (
	"context"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

func invitation(ns string, grants ...invitesv1alpha1.Grant) *invitesv1alpha1.Invitation {
	return &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "inv-", Namespace: ns},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: grants},
	}
}

func clusterRole(name string) invitesv1alpha1.Grant { return invitesv1alpha1.Grant{ClusterRole: name} }

func createPolicy(ctx context.Context, rgp *invitesv1alpha1.RoleGrantPolicy) {
	Expect(admin.Create(ctx, rgp)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { Expect(admin.Delete(ctx, rgp)).To(Succeed()) })
}

// teamLeadsPolicy: team leads invite editors and viewers into team-a's namespaces.
func teamLeadsPolicy() *invitesv1alpha1.RoleGrantPolicy {
	return &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-leads"},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "team-leads"}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "team-a"}},
			GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}, {ClusterRole: "view"}},
		},
	}
}

// expectAllowed creates the invitation, retrying while the webhook's cache catches up
// with a policy created moments ago.
func expectAllowed(ctx context.Context, c client.Client, inv *invitesv1alpha1.Invitation) {
	Eventually(func() error {
		attempt := inv.DeepCopy()
		err := c.Create(ctx, attempt)
		if err == nil {
			*inv = *attempt
		}
		return err
	}).Should(Succeed())
}

func expectForbidden(err error, message string) {
	Expect(err).To(HaveOccurred())
	Expect(apierrors.IsForbidden(err)).To(BeTrue(), "expected Forbidden, got %v", err)
	Expect(err.Error()).To(ContainSubstring(message))
}

var _ = Describe("Invitation admission", func() {
	Context("with no policy and no RBAC right", func() {
		It("lets nobody invite anybody, and says why", func(ctx SpecContext) {
			nobody := userClient("nobody")
			err := nobody.Create(ctx, invitation("team-a", clusterRole("view")))
			expectForbidden(err, `nobody may not offer these grants: no RoleGrantPolicy names user "nobody" or any of their groups [system:authenticated]; `+
				`nor do the inviter's own RBAC rights: grants[0]: nobody may not create rolebindings in namespace team-a`)
		})
	})

	Context("with the team-leads policy", func() {
		BeforeEach(func(ctx SpecContext) { createPolicy(ctx, teamLeadsPolicy()) })
		lead := func() client.Client { return userClient("lee", "team-leads") }

		It("lets a team lead invite an editor into team-a, and records who invited", func(ctx SpecContext) {
			inv := invitation("team-a", clusterRole("edit"))
			expectAllowed(ctx, lead(), inv)
			Expect(inv.Spec.Inviter).NotTo(BeNil())
			Expect(inv.Spec.Inviter.Username).To(Equal("lee"))
			Expect(inv.Spec.Inviter.Groups).To(ContainElements("team-leads", "system:authenticated"))
		})

		It("lets a team lead grant in another of the tenant's namespaces", func(ctx SpecContext) {
			expectAllowed(ctx, lead(), invitation("team-a", invitesv1alpha1.Grant{ClusterRole: "view", Namespace: "team-a-prod"}))
		})

		It("refuses team-b, naming the policy and the namespace", func(ctx SpecContext) {
			c := lead()
			Eventually(func() error { return c.Create(ctx, invitation("team-b", clusterRole("edit"))) }).Should(
				MatchError(ContainSubstring("RoleGrantPolicy team-leads: namespace team-b is not selected by its namespaceSelector (tenant=team-a)")))
			err := c.Create(ctx, invitation("team-a", invitesv1alpha1.Grant{ClusterRole: "edit", Namespace: "team-b"}))
			expectForbidden(err, "RoleGrantPolicy team-leads: namespace team-b is not selected by its namespaceSelector (tenant=team-a)")
		})

		It("refuses admin", func(ctx SpecContext) {
			c := lead()
			Eventually(func() error { return c.Create(ctx, invitation("team-a", clusterRole("admin"))) }).Should(
				MatchError(ContainSubstring("RoleGrantPolicy team-leads: grants[0]: clusterRole admin is not grantable (grantable: clusterRole edit, clusterRole view)")))
		})

		It("refuses cluster-wide grants", func(ctx SpecContext) {
			c := lead()
			Eventually(func() error {
				return c.Create(ctx, invitation("team-a", invitesv1alpha1.Grant{ClusterRole: "view", ClusterWide: true}))
			}).Should(MatchError(ContainSubstring("RoleGrantPolicy team-leads: grants[0]: cluster-wide grants are not allowed")))
		})

		It("refuses a forged inviter on create", func(ctx SpecContext) {
			inv := invitation("team-a", clusterRole("edit"))
			inv.Spec.Inviter = &invitesv1alpha1.Inviter{Username: "cluster-admin", Groups: []string{"system:masters"}}
			err := lead().Create(ctx, inv)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring("spec.inviter: Forbidden: is set by rolecall to the user who creates the invitation; leave it empty"))
		})

		It("refuses changing the inviter on update", func(ctx SpecContext) {
			c := lead()
			inv := invitation("team-a", clusterRole("edit"))
			expectAllowed(ctx, c, inv)
			inv.Spec.Inviter.Username = "someone-else"
			err := c.Update(ctx, inv)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring("inviter is immutable"))
		})

		It("refuses an update that offers more than the policy allows", func(ctx SpecContext) {
			c := lead()
			inv := invitation("team-a", clusterRole("view"))
			expectAllowed(ctx, c, inv)
			inv.Spec.Grants = append(inv.Spec.Grants, clusterRole("admin"))
			expectForbidden(c.Update(ctx, inv), "grants[1]: clusterRole admin is not grantable")
		})

		It("refuses a colleague's update that the original inviter could not offer either", func(ctx SpecContext) {
			inv := invitation("team-a", clusterRole("view"))
			expectAllowed(ctx, lead(), inv)
			platform := userClient("pat", "platform")
			createPolicy(ctx, &invitesv1alpha1.RoleGrantPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "platform"},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "platform"}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "admin"}, {ClusterRole: "view"}},
				},
			})
			Expect(platform.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
			inv.Spec.Grants = []invitesv1alpha1.Grant{clusterRole("admin")}
			Eventually(func() error { return platform.Update(ctx, inv) }).Should(
				MatchError(ContainSubstring("the invitation's inviter lee, whose name it keeps, may not offer it as changed")))
		})

		It("lets anyone allowed to edit the invitation revoke it", func(ctx SpecContext) {
			inv := invitation("team-a", clusterRole("view"))
			expectAllowed(ctx, lead(), inv)
			inv.Spec.Revoked = true
			Expect(userClient("nobody").Update(ctx, inv)).To(Succeed())
		})
	})

	Context("with RBAC delegation", func() {
		It("lets someone who may bind a role themselves invite into it, and nothing more", func(ctx SpecContext) {
			binder := &rbacv1.Role{
				ObjectMeta: metav1.ObjectMeta{Name: "binder", Namespace: "team-b"},
				Rules: []rbacv1.PolicyRule{
					{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
					{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"edit"}},
				},
			}
			Expect(admin.Create(ctx, binder)).To(Succeed())
			Expect(admin.Create(ctx, &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "rita-binder", Namespace: "team-b"},
				RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "binder"},
				Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: "rita"}},
			})).To(Succeed())
			rita := userClient("rita")

			Eventually(func() error { return rita.Create(ctx, invitation("team-b", clusterRole("edit"))) }).Should(Succeed())
			expectForbidden(rita.Create(ctx, invitation("team-b", clusterRole("cluster-admin"))),
				"nor do the inviter's own RBAC rights: grants[0]: rita may not bind clusterroles cluster-admin in namespace team-b")
			expectForbidden(rita.Create(ctx, invitation("team-a", clusterRole("edit"))),
				"grants[0]: rita may not create rolebindings in namespace team-a")
			expectForbidden(rita.Create(ctx, invitation("team-b", invitesv1alpha1.Grant{ClusterRole: "edit", ClusterWide: true})),
				"grants[0]: rita may not create clusterrolebindings")
		})

		It("does not let someone who may create invitations grant cluster-admin", func(ctx SpecContext) {
			err := userClient("mallory").Create(ctx, invitation("team-a", clusterRole("cluster-admin")))
			expectForbidden(err, "mallory may not create rolebindings in namespace team-a")
		})
	})

	Context("with a per-inviter quota", func() {
		It("counts only the inviter's active invitations", func(ctx SpecContext) {
			createPolicy(ctx, &invitesv1alpha1.RoleGrantPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "quota"},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "quota-testers"}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
					Limits:         &invitesv1alpha1.PolicyLimits{MaxActiveInvitationsPerInviter: ptr.To[int32](2)},
				},
			})
			quinn := userClient("quinn", "quota-testers")
			first := invitation("team-b", clusterRole("view"))
			expectAllowed(ctx, quinn, first)
			Eventually(func() error { return quinn.Create(ctx, invitation("team-b", clusterRole("view"))) }).Should(Succeed())
			Eventually(func() error { return quinn.Create(ctx, invitation("team-b", clusterRole("view"))) }).Should(
				MatchError(ContainSubstring("the inviter already has 2 active invitations (limit 2)")))

			first.Status.Phase = invitesv1alpha1.PhaseExpired
			Expect(admin.Status().Update(ctx, first)).To(Succeed())
			Eventually(func() error { return quinn.Create(ctx, invitation("team-b", clusterRole("view"))) }).Should(Succeed())
		})
	})
})

var _ = Describe("RoleGrantPolicy admission", func() {
	DescribeTable("refuses a policy that could never be used, naming the field",
		func(ctx SpecContext, mutate func(*invitesv1alpha1.RoleGrantPolicy), message string) {
			rgp := teamLeadsPolicy()
			rgp.Name = "broken"
			mutate(rgp)
			err := admin.Create(ctx, rgp)
			Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
			Expect(err.Error()).To(ContainSubstring(message))
		},
		Entry("a rule that does not compile", func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "inviter.groups.exists(g, ", Message: "m"}}
		}, "spec.rules[0].expression: Invalid value"),
		Entry("a rule that is not a bool", func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "size(inviter.groups) + 1", Message: "m"}}
		}, "must return a bool"),
		Entry("a selector that does not parse", func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tenant", Operator: "Near"}}}
		}, "spec.namespaceSelector"),
		Entry("cluster-wide with no cluster role to grant", func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.AllowClusterWide = true
			p.Spec.GrantableRoles = []invitesv1alpha1.GrantableRole{{Role: "deployer"}}
		}, "spec.allowClusterWide: Invalid value: true: no grantable role is a clusterRole"),
	)
})
