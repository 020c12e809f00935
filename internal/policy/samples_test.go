package policy_test

import (
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// The sample policies are the worked examples of docs/policy.md; these specs hold them to
// what the guide says they do.
func samplePolicies() []*policy.Compiled {
	files, err := filepath.Glob(filepath.Join("..", "..", "config", "samples", "invites_v1alpha1_rolegrantpolicy*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	Expect(files).NotTo(BeEmpty())
	var compiled []*policy.Compiled
	for _, f := range files {
		data, err := os.ReadFile(f) //nolint:gosec // the repository's own samples
		Expect(err).NotTo(HaveOccurred())
		rgp := &invitesv1alpha1.RoleGrantPolicy{}
		Expect(yaml.UnmarshalStrict(data, rgp)).To(Succeed(), f)
		c := policy.Compile(rgp)
		Expect(c.Errors).To(BeEmpty(), f)
		compiled = append(compiled, c)
	}
	return compiled
}

func sampleNamespaces() map[string]*corev1.Namespace {
	ns := func(name string, labels, annotations map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels, Annotations: annotations}}
	}
	return map[string]*corev1.Namespace{
		"team-a":    ns("team-a", map[string]string{"tenant": "team-a"}, nil),
		"handbook":  ns("handbook", map[string]string{"audience": "staff"}, nil),
		"workshop":  ns("workshop", map[string]string{"invites.rolecall.dev/workshops": "allowed"}, nil),
		"workshop2": ns("workshop2", map[string]string{"invites.rolecall.dev/workshops": "allowed"}, nil),
		// Annotated, not labeled: an annotation is not what the policy selects by.
		"annotated":   ns("annotated", nil, map[string]string{"invites.rolecall.dev/workshops": "allowed"}),
		"kube-system": ns("kube-system", map[string]string{"kubernetes.io/metadata.name": "kube-system"}, nil),
		"payroll":     ns("payroll", nil, nil),
		"team-a-qa":   ns("team-a-qa", map[string]string{"tenant": "team-a"}, nil),
	}
}

func sampleInvitation(ns string, mutate func(*invitesv1alpha1.InvitationSpec)) *invitesv1alpha1.Invitation {
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: ns},
		Spec:       invitesv1alpha1.InvitationSpec{MaxUses: 1, TokenType: invitesv1alpha1.TokenTypeLink},
	}
	mutate(&inv.Spec)
	return inv
}

var (
	admin   = invitesv1alpha1.Inviter{Username: "ada", Groups: []string{"platform-admins", "system:authenticated"}}
	lead    = invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"team-leads", "system:authenticated"}}
	staffer = invitesv1alpha1.Inviter{Username: "stu", Groups: []string{"staff", "system:authenticated"}}
	bot     = invitesv1alpha1.Inviter{Username: "system:serviceaccount:platform:onboarding", Groups: []string{"system:serviceaccounts"}}
)

var _ = Describe("The sample policies (docs/policy.md)", func() {
	DescribeTable("decide as the guide says",
		func(inviter invitesv1alpha1.Inviter, inv *invitesv1alpha1.Invitation, allowedBy, refusal string) {
			d := policy.Evaluate(samplePolicies(), policy.Request{
				Invitation: inv, Inviter: inviter, Namespaces: sampleNamespaces(), DefaultExpiresAfter: 72 * time.Hour,
			})
			if allowedBy != "" {
				Expect(d.AllowedBy).To(Equal(allowedBy), d.Message(inviter))
				return
			}
			Expect(d.Allowed).To(BeFalse())
			Expect(d.Message(inviter)).To(ContainSubstring(refusal))
		},
		Entry("an admin invites an admin anywhere", admin, sampleInvitation("payroll", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "admin"}}
			s.Email, s.ExpiresAfter = "new-admin@example.com", &metav1.Duration{Duration: 24 * time.Hour}
		}), "platform-admins", ""),
		Entry("an admin's invitations last a day at most", admin, sampleInvitation("payroll", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}}
			s.Email = "auditor@example.com"
		}), "", "RoleGrantPolicy platform-admins: expiresAfter 72h0m0s exceeds the limit of 24h0m0s"),
		Entry("a team lead invites an editor into the tenant", lead, sampleInvitation("team-a", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit"}, {ClusterRole: "view", Namespace: "team-a-qa"}}
			s.Email = "dev@example.com"
		}), "team-leads", ""),
		Entry("a team lead may not invite outside the company domain", lead, sampleInvitation("team-a", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit"}}
			s.Email = "friend@gmail.com"
		}), "", "RoleGrantPolicy team-leads: email domain gmail.com is not allowed (allowed: example.com)"),
		Entry("a team lead may not hand out more than 5 uses", lead, sampleInvitation("team-a", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}}
			s.Email, s.MaxUses = "dev@example.com", 6
		}), "", "RoleGrantPolicy team-leads: rules[0]: only platform may create invitations with more than 5 uses"),
		Entry("staff invite staff", staffer, sampleInvitation("handbook", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "edit"}}
			s.Email = "colleague@example.com"
		}), "staff", ""),
		Entry("staff may not invite admins", staffer, sampleInvitation("handbook", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "admin"}}
			s.Email = "colleague@example.com"
		}), "", "RoleGrantPolicy staff: grants[0]: clusterRole admin is not grantable (grantable: clusterRole view, clusterRole edit)"),
		Entry("the bot hands out a workshop code where the namespace opted in", bot, sampleInvitation("workshop", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}}
			s.TokenType, s.MaxUses = invitesv1alpha1.TokenTypeCode, 30
			s.ExpiresAfter, s.GrantDuration = &metav1.Duration{Duration: 4 * time.Hour}, &metav1.Duration{Duration: 24 * time.Hour}
		}), "onboarding-bot", ""),
		Entry("the bot may not where the namespace did not opt in", bot, sampleInvitation("payroll", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}}
			s.TokenType, s.MaxUses = invitesv1alpha1.TokenTypeCode, 30
			s.ExpiresAfter, s.GrantDuration = &metav1.Duration{Duration: 4 * time.Hour}, &metav1.Duration{Duration: 24 * time.Hour}
		}), "", "RoleGrantPolicy onboarding-bot: namespace payroll is not selected by its namespaceSelector (invites.rolecall.dev/workshops=allowed)"),
		Entry("the bot may not grant in kube-system from a namespace that opted in", bot, sampleInvitation("workshop", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view", Namespace: "kube-system"}}
			s.TokenType, s.MaxUses = invitesv1alpha1.TokenTypeCode, 30
			s.ExpiresAfter, s.GrantDuration = &metav1.Duration{Duration: 4 * time.Hour}, &metav1.Duration{Duration: 24 * time.Hour}
		}), "", "RoleGrantPolicy onboarding-bot: namespace kube-system is not selected by its namespaceSelector (invites.rolecall.dev/workshops=allowed)"),
		Entry("the bot may not grant in another workshop namespace either", bot, sampleInvitation("workshop", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}, {ClusterRole: "view", Namespace: "workshop2"}}
			s.TokenType, s.MaxUses = invitesv1alpha1.TokenTypeCode, 30
			s.ExpiresAfter, s.GrantDuration = &metav1.Duration{Duration: 4 * time.Hour}, &metav1.Duration{Duration: 24 * time.Hour}
		}), "", "RoleGrantPolicy onboarding-bot: rules[0]: workshop codes grant only in the invitation's own namespace"),
		Entry("an annotation does not opt a namespace in", bot, sampleInvitation("annotated", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}}
			s.TokenType, s.MaxUses = invitesv1alpha1.TokenTypeCode, 30
			s.ExpiresAfter, s.GrantDuration = &metav1.Duration{Duration: 4 * time.Hour}, &metav1.Duration{Duration: 24 * time.Hour}
		}), "", "RoleGrantPolicy onboarding-bot: namespace annotated is not selected"),
		Entry("the bot's grants must expire", bot, sampleInvitation("workshop", func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{ClusterRole: "view"}}
			s.TokenType, s.ExpiresAfter = invitesv1alpha1.TokenTypeCode, &metav1.Duration{Duration: 4 * time.Hour}
		}), "", "RoleGrantPolicy onboarding-bot: grantDuration is required (at most 168h0m0s)"),
	)
})
