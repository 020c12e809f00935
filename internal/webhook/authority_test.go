package webhook_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// Each spec here plays an attack on rolecall's authority as the weakest actor who could
// try it, and asserts that admission refuses it.

// tenantNamespace makes a namespace of tenant team-a for one spec.
func tenantNamespace(ctx context.Context, labels map[string]string) string {
	if labels == nil {
		labels = map[string]string{"tenant": "team-a"}
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "authority-", Labels: labels}}
	Expect(admin.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// grantRole gives a user a namespaced Role with these rules.
func grantRole(ctx context.Context, ns, user string, rules ...rbacv1.PolicyRule) {
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{GenerateName: user + "-", Namespace: ns}, Rules: rules}
	Expect(admin.Create(ctx, role)).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{GenerateName: user + "-", Namespace: ns},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "User", Name: user}},
	})).To(Succeed())
}

// policyFor makes a policy for one group; mutate adjusts it.
func policyFor(name, group string, mutate func(*invitesv1alpha1.RoleGrantPolicySpec)) *invitesv1alpha1.RoleGrantPolicy {
	rgp := &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: group}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "team-a"}},
			GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}, {ClusterRole: "edit"}},
		},
	}
	if mutate != nil {
		mutate(&rgp.Spec)
	}
	return rgp
}

// expectRefused retries while the webhook's cache catches up with a policy created
// moments ago, until the request is refused with the message.
func expectRefused(attempt func() error, message string) {
	Eventually(attempt).Should(MatchError(ContainSubstring(message)))
}

var _ = Describe("Authority over what an invitation can cause", func() {
	Context("an identity provider group (idpGroup)", func() {
		It("is refused to a team lead whose policy lists no such group, and allowed once it does", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, nil)
			createPolicy(ctx, policyFor("idp-leads", "idp-leads", nil))
			lead := userClient("ida", "idp-leads")
			offer := func() error {
				return lead.Create(ctx, invitation(ns, invitesv1alpha1.Grant{ClusterRole: "view", IDPGroup: "cluster-admins"}))
			}
			expectRefused(offer, "RoleGrantPolicy idp-leads: grants[0]: idpGroup cluster-admins is not grantable (the policy lists no grantableIDPGroups)")
			Expect(apierrors.IsForbidden(offer())).To(BeTrue())

			rgp := &invitesv1alpha1.RoleGrantPolicy{}
			Expect(admin.Get(ctx, client.ObjectKey{Name: "idp-leads"}, rgp)).To(Succeed())
			rgp.Spec.GrantableIDPGroups = []string{"readers"}
			Expect(admin.Update(ctx, rgp)).To(Succeed())
			expectRefused(offer, "idpGroup cluster-admins is not grantable (grantableIDPGroups: readers)")
			expectAllowed(ctx, lead, invitation(ns, invitesv1alpha1.Grant{ClusterRole: "view", IDPGroup: "readers"}))
		})

		It("is never allowed through RBAC delegation, even to someone who may bind the role", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, map[string]string{"tenant": "nobody"})
			grantRole(ctx, ns, "binder",
				rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create", "delete"}},
				rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"view"}})
			binder := userClient("binder")
			Eventually(func() error { return binder.Create(ctx, invitation(ns, clusterRole("view")), client.DryRunAll) }).Should(Succeed())
			expectForbidden(binder.Create(ctx, invitation(ns, invitesv1alpha1.Grant{ClusterRole: "view", IDPGroup: "admins"})),
				"grants[0]: idpGroup admins cannot be delegated through RBAC")
		})
	})

	Context("grants in other namespaces", func() {
		It("are refused to the sample onboarding bot, which may not grant in kube-system from a namespace that opted in", func(ctx SpecContext) {
			rgp := &invitesv1alpha1.RoleGrantPolicy{}
			Expect(readSample("invites_v1alpha1_rolegrantpolicy_onboarding_bot.yaml", rgp)).To(Succeed())
			createPolicy(ctx, rgp)
			workshop := tenantNamespace(ctx, map[string]string{"invites.rolecall.dev/workshops": "allowed"})
			bot := userClient("system:serviceaccount:platform:onboarding", "system:serviceaccounts", "system:serviceaccounts:platform")
			code := func(grants ...invitesv1alpha1.Grant) *invitesv1alpha1.Invitation {
				inv := invitation(workshop, grants...)
				inv.Spec.TokenType, inv.Spec.MaxUses = invitesv1alpha1.TokenTypeCode, 30
				inv.Spec.ExpiresAfter, inv.Spec.GrantDuration = &metav1.Duration{Duration: 4 * time.Hour}, &metav1.Duration{Duration: 24 * time.Hour}
				return inv
			}
			expectAllowed(ctx, bot, code(clusterRole("view")))
			expectForbidden(bot.Create(ctx, code(clusterRole("view"), invitesv1alpha1.Grant{ClusterRole: "view", Namespace: "kube-system"})),
				"RoleGrantPolicy onboarding-bot: namespace kube-system is not selected by its namespaceSelector")
		})

		It("are visible to rules through namespaces", func(ctx SpecContext) {
			createPolicy(ctx, policyFor("home-only", "home-leads", func(s *invitesv1alpha1.RoleGrantPolicySpec) {
				s.NamespaceSelector = nil
				s.Rules = []invitesv1alpha1.PolicyRule{{
					Expression: "namespaces.all(ns, ns.metadata.name == namespaceObject.metadata.name)",
					Message:    "grants stay in the invitation's namespace",
				}}
			}))
			lead := userClient("hal", "home-leads")
			expectAllowed(ctx, lead, invitation("team-b", clusterRole("view")))
			expectForbidden(lead.Create(ctx, invitation("team-b", invitesv1alpha1.Grant{ClusterRole: "view", Namespace: "kube-system"})),
				"RoleGrantPolicy home-only: rules[0]: grants stay in the invitation's namespace")
		})
	})

	Context("a policy that selects every namespace", func() {
		It("is admitted with a warning", func(ctx SpecContext) {
			warnings := &warningCollector{}
			cfg := copyConfig(env.Config)
			cfg.WarningHandler = warnings
			dyn, err := dynamic.NewForConfig(cfg)
			Expect(err).NotTo(HaveOccurred())
			rgp := policyFor("everywhere", "everywhere", func(s *invitesv1alpha1.RoleGrantPolicySpec) { s.NamespaceSelector = nil })
			rgp.SetGroupVersionKind(invitesv1alpha1.GroupVersion.WithKind("RoleGrantPolicy"))
			obj, err := runtime.DefaultUnstructuredConverter.ToUnstructured(rgp)
			Expect(err).NotTo(HaveOccurred())
			_, err = dyn.Resource(invitesv1alpha1.GroupVersion.WithResource("rolegrantpolicies")).
				Create(ctx, &unstructured.Unstructured{Object: obj}, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			Expect(err).NotTo(HaveOccurred())
			Expect(warnings.all()).To(ContainElement(policy.AllNamespacesWarning))
		})
	})

	Context("upgrade: Replace", func() {
		replace := func(ns string, grants ...invitesv1alpha1.Grant) *invitesv1alpha1.Invitation {
			inv := invitation(ns, grants...)
			inv.Spec.Upgrade = invitesv1alpha1.UpgradeReplace
			return inv
		}

		It("is refused to a lead allowed only view, whose policy does not allow Replace", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, nil)
			createPolicy(ctx, policyFor("view-only", "viewers-bot", nil))
			bot := userClient("viewbot", "viewers-bot")
			expectRefused(func() error { return bot.Create(ctx, replace(ns, clusterRole("view"))) },
				"RoleGrantPolicy view-only: upgrade: Replace removes the person's grants from other invitations, and the policy does not set allowReplace")
		})

		It("is allowed by a policy that sets allowReplace", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, nil)
			createPolicy(ctx, policyFor("replacers", "replacers", func(s *invitesv1alpha1.RoleGrantPolicySpec) { s.AllowReplace = true }))
			expectAllowed(ctx, userClient("rae", "replacers"), replace(ns, clusterRole("view")))
		})

		It("is refused under delegation to someone who may not delete the bindings it removes", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, map[string]string{"tenant": "nobody"})
			grantRole(ctx, ns, "creator",
				rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
				rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"view"}})
			creator := userClient("creator")
			Eventually(func() error { return creator.Create(ctx, invitation(ns, clusterRole("view")), client.DryRunAll) }).Should(Succeed())
			expectForbidden(creator.Create(ctx, replace(ns, clusterRole("view"))),
				fmt.Sprintf("upgrade: Replace: creator may not delete rolebindings in namespace %s", ns))
		})
	})

	Context("an update that widens or extends an invitation", func() {
		var ns string
		var inv *invitesv1alpha1.Invitation
		BeforeEach(func(ctx SpecContext) {
			ns = tenantNamespace(ctx, nil)
			createPolicy(ctx, policyFor("movers", "movers", func(s *invitesv1alpha1.RoleGrantPolicySpec) {
				s.Limits = &invitesv1alpha1.PolicyLimits{MaxLifetime: &metav1.Duration{Duration: time.Hour}}
			}))
			inv = invitation(ns, clusterRole("view"))
			inv.Spec.ExpiresAfter = &metav1.Duration{Duration: 30 * time.Minute}
			inv.Spec.GrantDuration = &metav1.Duration{Duration: 24 * time.Hour}
			expectAllowed(ctx, userClient("mo", "movers"), inv)
		})

		// The inviter left the movers group: the API server now authenticates them without it.
		formerMover := func() client.Client { return userClient("mo") }
		const notInGroup = `mo may not offer these grants: no RoleGrantPolicy names user "mo"`

		DescribeTable("is refused to an inviter who has lost the group that allowed it",
			func(ctx SpecContext, change func(*invitesv1alpha1.Invitation), message string) {
				change(inv)
				expectForbidden(formerMover().Update(ctx, inv), message)
			},
			Entry("a resend", func(i *invitesv1alpha1.Invitation) {
				i.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "again"}
			}, notInGroup),
			Entry("a longer expiresAfter", func(i *invitesv1alpha1.Invitation) {
				i.Spec.ExpiresAfter = &metav1.Duration{Duration: 50 * time.Minute}
			}, notInGroup),
			Entry("more uses", func(i *invitesv1alpha1.Invitation) { i.Spec.MaxUses = 2 }, notInGroup),
			Entry("Replace", func(i *invitesv1alpha1.Invitation) { i.Spec.Upgrade = invitesv1alpha1.UpgradeReplace }, notInGroup),
			Entry("a custom token", func(i *invitesv1alpha1.Invitation) {
				i.Spec.TokenType, i.Spec.CustomTokenSecretRef = invitesv1alpha1.TokenTypeCustom, &invitesv1alpha1.SecretReference{Name: "mine"}
			}, "mo may not get Secret mine"),
			Entry("webhook delivery", func(i *invitesv1alpha1.Invitation) { i.Spec.Delivery = &invitesv1alpha1.Delivery{Webhook: true} }, notInGroup),
			Entry("a redirect", func(i *invitesv1alpha1.Invitation) { i.Spec.RedirectURL = "https://evil.example.net/" }, notInGroup),
			Entry("permanent grants", func(i *invitesv1alpha1.Invitation) { i.Spec.GrantDuration = nil }, notInGroup),
			Entry("a hidden inviter", func(i *invitesv1alpha1.Invitation) { i.Spec.HideInviter = true }, notInGroup),
		)

		It("lets the same inviter, still in the group, resend", func(ctx SpecContext) {
			inv.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "again"}
			Expect(userClient("mo", "movers").Update(ctx, inv)).To(Succeed())
		})

		It("lets anyone who may edit it narrow it", func(ctx SpecContext) {
			inv.Spec.ExpiresAfter = &metav1.Duration{Duration: 10 * time.Minute}
			inv.Spec.Revoked = true
			Expect(formerMover().Update(ctx, inv)).To(Succeed())
		})

		It("refuses an expiresAfter past the policy's maxLifetime", func(ctx SpecContext) {
			inv.Spec.ExpiresAfter = &metav1.Duration{Duration: 2 * time.Hour}
			expectForbidden(userClient("mo", "movers").Update(ctx, inv), "past the invitation's maxLifetime of 1h0m0s from its creation")
		})

		It("refuses a resend whose new token would outlive the invitation's maxLifetime", func(ctx SpecContext) {
			inv.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
			mo := userClient("mo", "movers")
			Expect(mo.Update(ctx, inv)).To(Succeed(), "a token issued at creation may live the whole lifetime")
			// Every resend restarts the token; from the second after creation on, a token of an
			// hour would outlive the invitation.
			n := 0
			Eventually(func() error {
				n++
				inv.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: fmt.Sprint(n)}
				return mo.Update(ctx, inv)
			}).Should(MatchError(ContainSubstring("past the invitation's maxLifetime of 1h0m0s from its creation")))
		})
	})

	Context("a policy's maxLifetime on create", func() {
		It("refuses an expiresAfter longer than the invitation may live", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, nil)
			createPolicy(ctx, policyFor("short-lived", "short-lived", func(s *invitesv1alpha1.RoleGrantPolicySpec) {
				s.Limits = &invitesv1alpha1.PolicyLimits{MaxLifetime: &metav1.Duration{Duration: time.Hour}}
			}))
			c := userClient("sly", "short-lived")
			long := invitation(ns, clusterRole("view"))
			long.Spec.ExpiresAfter = &metav1.Duration{Duration: 2 * time.Hour}
			expectRefused(func() error { return c.Create(ctx, long.DeepCopy()) }, "past the invitation's maxLifetime of 1h0m0s from its creation")
			exact := invitation(ns, clusterRole("view"))
			exact.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Hour}
			expectAllowed(ctx, c, exact)
		})
	})

	Context("a denial of someone else's invitation", func() {
		It("does not tell the requester what RBAC allows the inviter", func(ctx SpecContext) {
			ns := tenantNamespace(ctx, map[string]string{"tenant": "nobody"})
			grantRole(ctx, ns, "dee",
				rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
				rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"clusterroles"}, Verbs: []string{"bind"}, ResourceNames: []string{"view"}})
			inv := invitation(ns, clusterRole("view"))
			expectAllowed(ctx, userClient("dee"), inv)
			// An administrator widens it to edit; dee could not offer that.
			inv.Spec.Grants = []invitesv1alpha1.Grant{clusterRole("edit")}
			err := admin.Update(ctx, inv)
			expectForbidden(err, "the invitation's inviter dee, whose name it keeps, may not offer it as changed")
			Expect(err.Error()).To(ContainSubstring("nor do the inviter's own RBAC rights: they may not make every binding themselves"))
			Expect(err.Error()).NotTo(ContainSubstring("may not bind"))
		})
	})
})

var _ = Describe("A custom token Secret", func() {
	var ns string
	var lead client.Client
	BeforeEach(func(ctx SpecContext) {
		ns = tenantNamespace(ctx, nil)
		createPolicy(ctx, policyFor("custom-leads", "custom-leads", nil))
		lead = userClient("cal", "custom-leads")
	})

	custom := func(secret string) *invitesv1alpha1.Invitation {
		inv := invitation(ns, clusterRole("view"))
		inv.Spec.TokenType, inv.Spec.CustomTokenSecretRef = invitesv1alpha1.TokenTypeCustom, &invitesv1alpha1.SecretReference{Name: secret}
		return inv
	}
	secret := func(ctx context.Context, name string, mutate func(*corev1.Secret)) {
		s := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}},
			StringData: map[string]string{invitesv1alpha1.TokenSecretKey: strings.Repeat("x", 32)},
		}
		if mutate != nil {
			mutate(s)
		}
		Expect(admin.Create(ctx, s)).To(Succeed())
	}
	mayReadSecrets := func(ctx context.Context) {
		grantRole(ctx, ns, "cal", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
	}

	It("is refused to an inviter who may not read it", func(ctx SpecContext) {
		secret(ctx, "admins-token", nil)
		expectRefused(func() error { return lead.Create(ctx, custom("admins-token")) },
			fmt.Sprintf("spec.customTokenSecretRef.name: cal may not get Secret admins-token in namespace %s", ns))
	})

	It("is refused when it is a token Secret rolecall issued for another invitation", func(ctx SpecContext) {
		mayReadSecrets(ctx)
		secret(ctx, "victim-invitation-token", func(s *corev1.Secret) { s.Labels[invitesv1alpha1.TokenLabel] = invitesv1alpha1.TokenLabelIssued })
		expectRefused(func() error { return lead.Create(ctx, custom("victim-invitation-token")) },
			"is a token Secret that rolecall issued for an invitation")
	})

	It("is refused when another invitation owns it", func(ctx SpecContext) {
		mayReadSecrets(ctx)
		owner := invitation(ns, clusterRole("view"))
		Expect(admin.Create(ctx, owner)).To(Succeed())
		secret(ctx, "owned", func(s *corev1.Secret) {
			s.OwnerReferences = []metav1.OwnerReference{{APIVersion: invitesv1alpha1.GroupVersion.String(), Kind: "Invitation", Name: owner.Name, UID: owner.UID}}
		})
		expectRefused(func() error { return lead.Create(ctx, custom("owned")) }, "belongs to another Invitation")
	})

	It("is refused when another invitation already takes its token from it", func(ctx SpecContext) {
		mayReadSecrets(ctx)
		secret(ctx, "shared", nil)
		first := custom("shared")
		Expect(admin.Create(ctx, first)).To(Succeed())
		expectRefused(func() error { return lead.Create(ctx, custom("shared")) },
			fmt.Sprintf("is already the Custom token of Invitation %s", first.Name))
	})

	It("is allowed when it is the inviter's own, even before it exists", func(ctx SpecContext) {
		mayReadSecrets(ctx)
		expectAllowed(ctx, lead, custom("not-yet"))
	})

	It("cannot be resent by someone who may not read it", func(ctx SpecContext) {
		mayReadSecrets(ctx)
		inv := custom("mine")
		expectAllowed(ctx, lead, inv)
		inv.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "again"}
		expectForbidden(userClient("cole", "custom-leads").Update(ctx, inv), "cole may not get Secret mine")
	})
})

var _ = Describe("Invitation fields admission checks beyond the schema", func() {
	BeforeEach(func(ctx SpecContext) { createPolicy(ctx, teamLeadsPolicy()) })

	It("refuses an email that mail cannot deliver to", func(ctx SpecContext) {
		inv := invitation("team-a", clusterRole("view"))
		inv.Spec.Email = "alice..bob@example.com"
		err := userClient("lee", "team-leads").Create(ctx, inv)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("spec.email: Invalid value"))
	})

	It("refuses a resend value too long to be recorded in status", func(ctx SpecContext) {
		c := userClient("lee", "team-leads")
		inv := invitation("team-a", clusterRole("view"))
		expectAllowed(ctx, c, inv)
		inv.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: strings.Repeat("r", 257)}
		err := c.Update(ctx, inv)
		Expect(apierrors.IsInvalid(err)).To(BeTrue(), "got %v", err)
		Expect(err.Error()).To(ContainSubstring("metadata.annotations[invites.rolecall.dev/resend]: Too long: may not be more than 256 bytes"))
	})
})

var _ = Describe("The per-inviter quota", func() {
	It("holds when one inviter creates many invitations at once", func(ctx SpecContext) {
		ns := tenantNamespace(ctx, nil)
		createPolicy(ctx, policyFor("burst", "burst", func(s *invitesv1alpha1.RoleGrantPolicySpec) {
			s.Limits = &invitesv1alpha1.PolicyLimits{MaxActiveInvitationsPerInviter: ptr.To[int32](3)}
		}))
		c := userClient("bea", "burst")
		// Wait until the webhook sees the policy, without creating anything.
		Eventually(func() error { return c.Create(ctx, invitation(ns, clusterRole("view")), client.DryRunAll) }).Should(Succeed())

		var wg sync.WaitGroup
		results := make(chan error, 12)
		for range 12 {
			wg.Go(func() { results <- c.Create(ctx, invitation(ns, clusterRole("view"))) })
		}
		wg.Wait()
		close(results)
		created := 0
		for err := range results {
			if err == nil {
				created++
				continue
			}
			expectForbidden(err, "the inviter already has 3 active invitations (limit 3)")
		}
		Expect(created).To(Equal(3))
		var list invitesv1alpha1.InvitationList
		Expect(admin.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
		Expect(list.Items).To(HaveLen(3))
	})
})

// readSample decodes one of config/samples.
func readSample(name string, into any) error {
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "samples", name)) //nolint:gosec // the repository's own samples
	if err != nil {
		return err
	}
	return yaml.UnmarshalStrict(data, into)
}

// copyConfig is a copy of cfg that may be changed.
func copyConfig(cfg *rest.Config) *rest.Config { return rest.CopyConfig(cfg) }

// warningCollector keeps the warnings the API server sends.
type warningCollector struct {
	mu       sync.Mutex
	warnings []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.warnings = append(w.warnings, text)
}

func (w *warningCollector) all() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.warnings...)
}

var _ = Describe("The revoke-grants finalizer", func() {
	It("is taken off by nobody but the manager, so deleting an invitation with revokeGrants always takes its grants", func(ctx SpecContext) {
		ns := tenantNamespace(ctx, nil)
		inv := &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: "revocable", Namespace: ns, Finalizers: []string{invitesv1alpha1.RevokeGrantsFinalizer}},
			Spec: invitesv1alpha1.InvitationSpec{
				Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}, RevokeGrants: true,
			},
		}
		Expect(admin.Create(ctx, inv)).To(Succeed())

		editor := userClient("mallory")
		strip := client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"finalizers":null}}`))
		err := editor.Patch(ctx, inv.DeepCopy(), strip)
		Expect(err).To(MatchError(ContainSubstring("metadata.finalizers: Forbidden")))
		Expect(err).To(MatchError(ContainSubstring("delete the invitation")))

		By("the manager (here: the administrator the webhooks run as) may")
		Expect(admin.Patch(ctx, inv.DeepCopy(), strip)).To(Succeed())
	})
})
