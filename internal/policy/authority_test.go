package policy_test

import (
	"context"
	"time"

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

// What an invitation can cause beyond its role bindings (an identity provider group,
// removing other grants, grants in other namespaces, a long life) must each be allowed.
var _ = Describe("What a policy must allow beyond roles", func() {
	withIDPGroup := func(group string) func(*invitesv1alpha1.InvitationSpec) {
		return func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", IDPGroup: group}}
		}
	}

	Context("an idpGroup", func() {
		It("is refused unless the policy lists it", func() {
			d, msg := decide(teamLeadsPolicy(), teamLead, invitation(withIDPGroup("cluster-admins")), 0)
			Expect(d.Allowed).To(BeFalse())
			Expect(msg).To(Equal("no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: " +
				"grants[0]: idpGroup cluster-admins is not grantable (the policy lists no grantableIDPGroups)"))

			listed := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) { p.Spec.GrantableIDPGroups = []string{"readers"} })
			d, msg = decide(listed, teamLead, invitation(withIDPGroup("cluster-admins")), 0)
			Expect(d.Allowed).To(BeFalse())
			Expect(msg).To(HaveSuffix("grants[0]: idpGroup cluster-admins is not grantable (grantableIDPGroups: readers)"))

			d, msg = decide(listed, teamLead, invitation(withIDPGroup("readers")), 0)
			Expect(d.Allowed).To(BeTrue(), msg)
		})
	})

	Context("upgrade: Replace", func() {
		replace := func(s *invitesv1alpha1.InvitationSpec) { s.Upgrade = invitesv1alpha1.UpgradeReplace }

		It("is refused unless the policy sets allowReplace", func() {
			d, msg := decide(teamLeadsPolicy(), teamLead, invitation(replace), 0)
			Expect(d.Allowed).To(BeFalse())
			Expect(msg).To(HaveSuffix("RoleGrantPolicy team-leads: upgrade: Replace removes the person's grants from other invitations, and the policy does not set allowReplace"))

			d, msg = decide(teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) { p.Spec.AllowReplace = true }), teamLead, invitation(replace), 0)
			Expect(d.Allowed).To(BeTrue(), msg)
		})
	})

	Context("rules about where grants land", func() {
		// Every namespace may be selected; the rule alone keeps grants at home.
		homeOnly := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.NamespaceSelector = nil
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{
				Expression: "namespaces.all(ns, ns.metadata.labels[?'tenant'] == namespaceObject.metadata.labels[?'tenant'])",
				Message:    "grants stay in the tenant's namespaces",
			}}
		})

		It("see every namespace a grant lands in, not only the invitation's", func() {
			d, msg := decide(homeOnly, teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
				s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}, {ClusterRole: "view", Namespace: "team-a-prod"}}
			}), 0)
			Expect(d.Allowed).To(BeTrue(), msg)

			d, msg = decide(homeOnly, teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
				s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", Namespace: "team-b"}}
			}), 0)
			Expect(d.Allowed).To(BeFalse())
			Expect(msg).To(HaveSuffix("rules[0]: grants stay in the tenant's namespaces"))
		})

		It("get each namespace once, in the order of the grants, without cluster-wide grants", func() {
			inv := invitation(func(s *invitesv1alpha1.InvitationSpec) {
				s.Grants = []invitesv1alpha1.Grant{
					{ClusterRole: "view", Namespace: "team-a-prod"}, {ClusterRole: "edit"},
					{ClusterRole: "view", ClusterWide: true}, {Role: "deployer", Namespace: "team-a-prod"},
				}
			})
			vars, err := policy.RuleVariables(policy.Request{Invitation: inv, Inviter: teamLead, Namespaces: namespaces()})
			Expect(err).NotTo(HaveOccurred())
			Expect(vars).To(HaveKeyWithValue("namespaces", HaveExactElements(
				HaveKeyWithValue("metadata", HaveKeyWithValue("name", "team-a-prod")),
				HaveKeyWithValue("metadata", HaveKeyWithValue("name", "team-a")),
			)))
			Expect(policy.GrantNamespaces(inv)).To(Equal([]string{"team-a-prod", "team-a"}))
		})
	})

	Context("limits.maxLifetime", func() {
		created := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
		bounded := teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxLifetime: duration(7 * 24 * time.Hour)}))
		decideAt := func(issuedAt time.Time, expiresAfter time.Duration) (policy.Decision, string) {
			inv := invitation(func(s *invitesv1alpha1.InvitationSpec) { s.ExpiresAfter = duration(expiresAfter) })
			inv.CreationTimestamp = metav1.NewTime(created)
			d := policy.Evaluate([]*policy.Compiled{policy.Compile(bounded)}, policy.Request{
				Invitation: inv, Inviter: teamLead, Namespaces: namespaces(), TokenIssuedAt: issuedAt,
			})
			return d, d.Message(teamLead)
		}

		It("allows a token that closes within the invitation's life", func() {
			d, msg := decideAt(created, 72*time.Hour)
			Expect(d.Allowed).To(BeTrue(), msg)
			Expect(d.MaxLifetime).To(Equal(7 * 24 * time.Hour))
			end, ok := policy.LifetimeEnd(&invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{CreationTimestamp: metav1.NewTime(created)}}, d)
			Expect(ok).To(BeTrue())
			Expect(end).To(Equal(created.Add(7 * 24 * time.Hour)))
		})

		It("refuses a resend whose new token would outlive the invitation", func() {
			d, msg := decideAt(created.Add(6*24*time.Hour), 72*time.Hour)
			Expect(d.Allowed).To(BeFalse())
			Expect(msg).To(HaveSuffix("RoleGrantPolicy team-leads: the token would stay valid until 2026-12-10T10:00:00Z, " +
				"past the invitation's maxLifetime of 168h0m0s from its creation (until 2026-12-08T10:00:00Z); shorten expiresAfter or create a new invitation"))
		})

		It("is not checked by a re-check that issues no token", func() {
			d, msg := decideAt(time.Time{}, 30*24*time.Hour)
			Expect(d.Allowed).To(BeTrue(), msg)
		})

		It("leaves an invitation allowed by delegation uncapped", func() {
			_, ok := policy.LifetimeEnd(&invitesv1alpha1.Invitation{}, policy.Decision{Allowed: true, AllowedBy: policy.DelegationName})
			Expect(ok).To(BeFalse())
		})
	})

	Context("a denial explained to someone other than the inviter", func() {
		It("names the policies but not what RBAC says about the inviter", func() {
			d := policy.Decision{Candidates: 1, Refusals: []policy.Refusal{{Policy: "team-leads", Reason: "grants[0]: clusterRole admin is not grantable"}},
				Delegation: "grants[0]: lee may not bind clusterroles admin in namespace team-a"}
			Expect(d.MessageForOthers(teamLead)).To(Equal("no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: " +
				"grants[0]: clusterRole admin is not grantable; nor do the inviter's own RBAC rights: they may not make every binding themselves"))
			Expect(d.Message(teamLead)).To(ContainSubstring("lee may not bind clusterroles admin"))
		})
	})
})

var _ = Describe("Policies that are wider than meant", func() {
	DescribeTable("are recognised when they select every namespace",
		func(selector *metav1.LabelSelector, all bool) {
			rgp := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) { p.Spec.NamespaceSelector = selector })
			Expect(policy.SelectsAllNamespaces(rgp)).To(Equal(all))
			cond := policy.NamespaceScopeCondition(rgp)
			Expect(cond.Type).To(Equal(invitesv1alpha1.PolicySelectsAllNamespacesCondition))
			if all {
				Expect(policy.Warnings(rgp)).To(ConsistOf(policy.AllNamespacesWarning))
				Expect(cond.Status).To(Equal(metav1.ConditionTrue))
				Expect(cond.Reason).To(Equal(invitesv1alpha1.PolicyNoNamespaceSelectorReason))
				Expect(cond.Message).To(Equal(policy.AllNamespacesWarning))
			} else {
				Expect(policy.Warnings(rgp)).To(BeEmpty())
				Expect(cond.Status).To(Equal(metav1.ConditionFalse))
				Expect(cond.Reason).To(Equal(invitesv1alpha1.PolicyNamespaceSelectorReason))
			}
		},
		Entry("no selector", nil, true),
		Entry("an empty selector", &metav1.LabelSelector{}, true),
		Entry("a label", &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "team-a"}}, false),
		Entry("an expression", &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tenant", Operator: metav1.LabelSelectorOpExists}}}, false),
	)

	It("refuses a ServiceAccount inviter named by its username", func() {
		rgp := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Inviters = []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectServiceAccount, Namespace: "platform", Name: "system:serviceaccount:platform:onboarding"}}
		})
		errs := policy.Compile(rgp).Errors
		Expect(errs).To(HaveLen(1))
		Expect(errs[0].Field).To(Equal("spec.inviters[0].name"))
		Expect(errs[0].Detail).To(ContainSubstring("not a username such as system:serviceaccount:platform:onboarding"))
	})
})

var _ = Describe("RBAC delegation", func() {
	// An API server stand-in that allows every right except those listed.
	newAuthorizer := func(denied ...authorizationv1.ResourceAttributes) *policy.Authorizer {
		scheme := runtime.NewScheme()
		Expect(clientgoscheme.AddToScheme(scheme)).To(Succeed())
		Expect(invitesv1alpha1.AddToScheme(scheme)).To(Succeed())
		c := fake.NewClientBuilder().WithScheme(scheme).
			WithObjects(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-b"}}).
			WithIndex(&invitesv1alpha1.Invitation{}, policy.InviterIndex, policy.InviterIndexValue).
			WithInterceptorFuncs(interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				sar, ok := obj.(*authorizationv1.SubjectAccessReview)
				if !ok {
					return c.Create(ctx, obj, opts...)
				}
				sar.Status.Allowed = true
				for _, d := range denied {
					if *sar.Spec.ResourceAttributes == d {
						sar.Status.Allowed = false
					}
				}
				return nil
			}}).Build()
		return &policy.Authorizer{Reader: c, Writer: c, AllowRBACDelegation: true}
	}

	It("never allows an idpGroup, which RBAC cannot express", func(ctx SpecContext) {
		d, err := newAuthorizer().Authorize(ctx, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", IDPGroup: "admins"}}
		}), stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Allowed).To(BeFalse())
		Expect(d.Message(stranger)).To(HaveSuffix("nor do the inviter's own RBAC rights: grants[0]: idpGroup admins cannot be delegated through RBAC, " +
			"which has no right for identity provider groups; a RoleGrantPolicy must list it in grantableIDPGroups"))
	})

	It("allows Replace only to someone who may delete the bindings it removes", func(ctx SpecContext) {
		inv := invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Upgrade = invitesv1alpha1.UpgradeReplace
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}, {ClusterRole: "view", Namespace: "team-b"}}
		})
		d, err := newAuthorizer().Authorize(ctx, inv, stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Allowed).To(BeTrue(), d.Message(stranger))

		noDelete := authorizationv1.ResourceAttributes{Verb: "delete", Group: "rbac.authorization.k8s.io", Resource: "rolebindings", Namespace: "team-b"}
		d, err = newAuthorizer(noDelete).Authorize(ctx, inv, stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Allowed).To(BeFalse())
		Expect(d.Message(stranger)).To(HaveSuffix("upgrade: Replace: sam may not delete rolebindings in namespace team-b"))

		inv.Spec.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}}
		noClusterDelete := authorizationv1.ResourceAttributes{Verb: "delete", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"}
		d, err = newAuthorizer(noClusterDelete).Authorize(ctx, inv, stranger)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Message(stranger)).To(HaveSuffix("upgrade: Replace: sam may not delete clusterrolebindings"))
	})
})
