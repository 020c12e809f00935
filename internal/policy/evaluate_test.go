package policy_test

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

var (
	teamLead = invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"team-leads", "system:authenticated"}}
	stranger = invitesv1alpha1.Inviter{Username: "sam", Groups: []string{"system:authenticated"}}
	robot    = invitesv1alpha1.Inviter{Username: "system:serviceaccount:platform:onboarding", Groups: []string{"system:serviceaccounts"}}
)

func namespaces() map[string]*corev1.Namespace {
	ns := func(name, tenant string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tenant": tenant}}}
	}
	return map[string]*corev1.Namespace{
		"team-a": ns("team-a", "team-a"), "team-a-prod": ns("team-a-prod", "team-a"), "team-b": ns("team-b", "team-b"),
	}
}

// teamLeadsPolicy lets team leads invite editors and viewers into team-a's namespaces.
func teamLeadsPolicy(mutate ...func(*invitesv1alpha1.RoleGrantPolicy)) *invitesv1alpha1.RoleGrantPolicy {
	rgp := &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-leads"},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "team-leads"}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "team-a"}},
			GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}, {ClusterRole: "view"}, {Role: "deployer"}},
		},
	}
	for _, m := range mutate {
		m(rgp)
	}
	return rgp
}

func withLimits(l invitesv1alpha1.PolicyLimits) func(*invitesv1alpha1.RoleGrantPolicy) {
	return func(p *invitesv1alpha1.RoleGrantPolicy) { p.Spec.Limits = &l }
}

func invitation(mutate ...func(*invitesv1alpha1.InvitationSpec)) *invitesv1alpha1.Invitation {
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "new-dev", Namespace: "team-a"},
		Spec: invitesv1alpha1.InvitationSpec{
			Grants:    []invitesv1alpha1.Grant{{ClusterRole: "edit"}},
			MaxUses:   1,
			TokenType: invitesv1alpha1.TokenTypeLink,
		},
	}
	for _, m := range mutate {
		m(&inv.Spec)
	}
	return inv
}

func decide(rgp *invitesv1alpha1.RoleGrantPolicy, inviter invitesv1alpha1.Inviter, inv *invitesv1alpha1.Invitation, active int) (policy.Decision, string) {
	d := policy.Evaluate([]*policy.Compiled{policy.Compile(rgp)}, policy.Request{
		Invitation: inv, Inviter: inviter, Namespaces: namespaces(),
		DefaultExpiresAfter: 72 * time.Hour, ActiveInvitations: active,
	})
	return d, d.Message(inviter)
}

func duration(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

var _ = Describe("Evaluating RoleGrantPolicies", func() {
	DescribeTable("allows what a policy allows",
		func(rgp *invitesv1alpha1.RoleGrantPolicy, inviter invitesv1alpha1.Inviter, inv *invitesv1alpha1.Invitation) {
			d, msg := decide(rgp, inviter, inv, 0)
			Expect(d.Allowed).To(BeTrue(), msg)
			Expect(d.AllowedBy).To(Equal(rgp.Name))
		},
		Entry("a group member, a grantable cluster role, a selected namespace", teamLeadsPolicy(), teamLead, invitation()),
		Entry("a grantable Role", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}}
		})),
		Entry("a grant in another selected namespace", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", Namespace: "team-a-prod"}}
		})),
		Entry("a user named directly", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Inviters = []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "sam"}}
		}), stranger, invitation()),
		Entry("a service account", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Inviters = []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectServiceAccount, Name: "onboarding", Namespace: "platform"}}
		}), robot, invitation()),
		Entry("a cluster-wide grant where allowed", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) { p.Spec.AllowClusterWide = true }),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
				s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}}
			})),
		Entry("no selector means every namespace", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) { p.Spec.NamespaceSelector = nil }),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
				s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit", Namespace: "team-b"}}
			})),
		Entry("expiresAfter within the limit", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxExpiresAfter: duration(168 * time.Hour)})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.ExpiresAfter = duration(168 * time.Hour) })),
		Entry("maxUses within the limit", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxUses: ptr.To[int32](10)})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 10 })),
		Entry("grantDuration within the limit", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxGrantDuration: duration(720 * time.Hour)})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.GrantDuration = duration(24 * time.Hour) })),
		Entry("a required email in an allowed domain, in any case", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{RequireEmail: true, AllowedEmailDomains: []string{"example.com"}})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.Email = "Alice@Example.COM" })),
		Entry("an allowed token type", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{TokenTypes: []invitesv1alpha1.TokenType{invitesv1alpha1.TokenTypeCode}})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.TokenType = invitesv1alpha1.TokenTypeCode })),
		Entry("a rule that holds", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "invitation.spec.maxUses <= 5 || 'platform' in inviter.groups", Message: "only platform may create invitations with more than 5 uses"}}
		}), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 5 })),
		Entry("a rule reading the namespace's labels", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "namespaceObject.metadata.labels['tenant'] == 'team-a'", Message: "tenant namespaces only"}}
		}), teamLead, invitation()),
	)

	DescribeTable("denies, saying which policy refused and why",
		func(rgp *invitesv1alpha1.RoleGrantPolicy, inviter invitesv1alpha1.Inviter, inv *invitesv1alpha1.Invitation, active int, want any) {
			d, msg := decide(rgp, inviter, inv, active)
			Expect(d.Allowed).To(BeFalse())
			matcher, ok := want.(types.GomegaMatcher)
			if !ok {
				matcher = Equal(want)
			}
			Expect(msg).To(matcher)
		},
		Entry("nobody named", teamLeadsPolicy(), stranger, invitation(), 0,
			`no RoleGrantPolicy names user "sam" or any of their groups [system:authenticated]`),
		Entry("a namespace outside the selector", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit", Namespace: "team-b"}}
		}), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: namespace team-b is not selected by its namespaceSelector (tenant=team-a)"),
		Entry("a namespace that does not exist", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit", Namespace: "ghost"}}
		}), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: namespace ghost does not exist"),
		Entry("a role not grantable", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}, {ClusterRole: "admin"}}
		}), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: grants[1]: clusterRole admin is not grantable (grantable: clusterRole edit, clusterRole view, role deployer)"),
		Entry("a Role with a ClusterRole's name", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{Role: "edit"}}
		}), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: grants[0]: role edit is not grantable (grantable: clusterRole edit, clusterRole view, role deployer)"),
		Entry("a cluster-wide grant", teamLeadsPolicy(), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}}
		}), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: grants[0]: cluster-wide grants are not allowed"),
		Entry("expiresAfter over the limit, by default", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxExpiresAfter: duration(24 * time.Hour)})),
			teamLead, invitation(), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: expiresAfter 72h0m0s exceeds the limit of 24h0m0s"),
		Entry("maxUses over the limit", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxUses: ptr.To[int32](10)})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 11 }), 0,
			"no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: maxUses 11 exceeds the limit of 10"),
		Entry("grantDuration missing", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxGrantDuration: duration(720 * time.Hour)})),
			teamLead, invitation(), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: grantDuration is required (at most 720h0m0s)"),
		Entry("grantDuration over the limit", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxGrantDuration: duration(720 * time.Hour)})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.GrantDuration = duration(721 * time.Hour) }), 0,
			"no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: grantDuration 721h0m0s exceeds the limit of 720h0m0s"),
		Entry("email missing", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{RequireEmail: true})),
			teamLead, invitation(), 0, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: an email is required: only private invitations are allowed"),
		Entry("email in another domain", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{RequireEmail: true, AllowedEmailDomains: []string{"example.com"}})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.Email = "eve@example.com.evil.test" }), 0,
			"no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: email domain example.com.evil.test is not allowed (allowed: example.com)"),
		Entry("a token type not allowed", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{TokenTypes: []invitesv1alpha1.TokenType{invitesv1alpha1.TokenTypeLink}})),
			teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.TokenType = invitesv1alpha1.TokenTypeCustom }), 0,
			"no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: tokenType Custom is not allowed (allowed: [Link])"),
		Entry("the inviter's quota used up", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{MaxActiveInvitationsPerInviter: ptr.To[int32](3)})),
			teamLead, invitation(), 3, "no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: the inviter already has 3 active invitations (limit 3)"),
		Entry("a rule that fails", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "invitation.spec.maxUses <= 5 || 'platform' in inviter.groups", Message: "only platform may create invitations with more than 5 uses"}}
		}), teamLead, invitation(func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 6 }), 0,
			"no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: rules[0]: only platform may create invitations with more than 5 uses"),
		Entry("a rule that errors", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "invitation.spec.email.endsWith('@example.com')", Message: "company emails only"}}
		}), teamLead, invitation(), 0,
			"no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: rules[0] could not be evaluated: no such key: email"),
		Entry("a policy whose rule does not compile", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "(", Message: "broken"}}
		}), teamLead, invitation(), 0, ContainSubstring("RoleGrantPolicy team-leads: the policy cannot be used: spec.rules[0].expression")),
	)

	It("lists every candidate policy in a denial, and stops at the first that allows", func() {
		strict := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) { p.Name = "a-strict" }, withLimits(invitesv1alpha1.PolicyLimits{RequireEmail: true}))
		viewers := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Name = "b-viewers"
			p.Spec.GrantableRoles = []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}}
		})
		others := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Name = "c-others"
			p.Spec.Inviters = []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "admins"}}
		})
		compiled := []*policy.Compiled{policy.Compile(others), policy.Compile(viewers), policy.Compile(strict)}
		req := policy.Request{Invitation: invitation(), Inviter: teamLead, Namespaces: namespaces(), DefaultExpiresAfter: time.Hour}

		d := policy.Evaluate(compiled, req)
		Expect(d.Allowed).To(BeFalse())
		Expect(d.Message(teamLead)).To(Equal("no RoleGrantPolicy allows this invitation: " +
			"RoleGrantPolicy a-strict: an email is required: only private invitations are allowed; " +
			"RoleGrantPolicy b-viewers: grants[0]: clusterRole edit is not grantable (grantable: clusterRole view)"))

		req.Invitation.Spec.Email = "new@example.com"
		Expect(policy.Evaluate(compiled, req).AllowedBy).To(Equal("a-strict"))
	})

	Context("with an inviter larger than the schema allows, as one in the admission request can be", func() {
		// The estimate at compile time assumes at most 256 groups of at most 512 characters.
		rgp := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "inviter.groups.all(g, g.lowerAscii() == g)", Message: "plain groups"}}
		})
		crowd := func(size int, group string) invitesv1alpha1.Inviter {
			inviter := teamLead
			inviter.Groups = []string{"team-leads"}
			for len(inviter.Groups) < size {
				inviter.Groups = append(inviter.Groups, group)
			}
			return inviter
		}

		It("compiles the rule", func() {
			Expect(policy.Compile(rgp).Errors).To(BeEmpty())
		})

		It("stops the rule at the runtime cost limit", func() {
			d, msg := decide(rgp, crowd(100, strings.Repeat("a", 20_000)), invitation(), 0)
			Expect(d.Allowed).To(BeFalse())
			Expect(msg).To(ContainSubstring("rules[0] could not be evaluated: operation cancelled: actual cost limit exceeded"))
		})

		It("stops the rule when the request is given up on", func() {
			ctx, cancel := context.WithCancel(context.Background())
			cancel()
			inviter := crowd(10_000, "group")
			d := policy.EvaluateContext(ctx, []*policy.Compiled{policy.Compile(rgp)}, policy.Request{
				Invitation: invitation(), Inviter: inviter, Namespaces: namespaces(), DefaultExpiresAfter: time.Hour,
			})
			Expect(d.Allowed).To(BeFalse())
			Expect(d.Message(inviter)).To(ContainSubstring("rules[0] could not be evaluated: operation interrupted"))
		})
	})
})

var _ = Describe("Compiling RoleGrantPolicies", func() {
	DescribeTable("finds what makes a policy unusable, by field",
		func(rgp *invitesv1alpha1.RoleGrantPolicy, field, why string) {
			errs := policy.Compile(rgp).Errors
			Expect(errs).NotTo(BeEmpty())
			Expect(errs.ToAggregate().Error()).To(And(ContainSubstring(field), ContainSubstring(why)))
		},
		Entry("a bad selector", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.NamespaceSelector = &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "tenant", Operator: "Near"}}}
		}), "spec.namespaceSelector", `"Near" is not a valid label selector operator`),
		Entry("a rule that does not compile", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "inviter.", Message: "m"}}
		}), "spec.rules[0].expression", "does not compile"),
		Entry("a rule that is not a bool", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: "'yes'", Message: "m"}}
		}), "spec.rules[0].expression", "must return a bool, not string"),
		Entry("cluster-wide with no cluster role", teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
			p.Spec.AllowClusterWide = true
			p.Spec.GrantableRoles = []invitesv1alpha1.GrantableRole{{Role: "deployer"}}
		}), "spec.allowClusterWide", "nothing could be granted cluster-wide"),
		Entry("email domains without requiring an email", teamLeadsPolicy(withLimits(invitesv1alpha1.PolicyLimits{AllowedEmailDomains: []string{"example.com"}})),
			"spec.limits.allowedEmailDomains", "needs limits.requireEmail"),
	)
})
