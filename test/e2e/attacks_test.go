package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/mailpit"
	"github.com/rolecall/rolecall/internal/token"
)

// Every spec here is an attack on rolecall's authority, played by the weakest actor who
// could try it, against the manager binary and a real API server. Each asserts the safe
// outcome: a failing spec is a way around rolecall.
var _ = Describe("Attacks on rolecall's authority", Ordered, ContinueOnFailure, func() {
	var (
		c    *cluster
		m    *managerProcess
		idp  *idpReceiver
		mail *mailpit.Server
	)

	BeforeAll(func(ctx SpecContext) {
		c = startCluster(ctx)
		idp = newIDPReceiver()
		mail = startMailpit(ctx)
		secretFile := filepath.Join(GinkgoT().TempDir(), "idp-hook-key")
		Expect(os.WriteFile(secretFile, []byte("attacks-hook-key"), 0o600)).To(Succeed())
		m = c.newManager(c.writeKubeconfig(""),
			"--idp-hook-url="+idp.server.URL, "--idp-hook-secret-file="+secretFile,
			"--smtp-host="+mail.SMTPHost, fmt.Sprintf("--smtp-port=%d", mail.SMTPPort), "--smtp-tls=none",
			"--smtp-from=Platform team <invites@example.test>",
			// Every attacker and every victim is a client of its own, named by the spec.
			"--trusted-proxies=127.0.0.1/32")
		m.args = append(m.args, "--public-url="+m.redeemURL)
		m.start()
		m.waitReady(ctx)

		// What the built-in admin ClusterRole holds in a namespace, as far as these attacks
		// need it (the control plane here runs no controller that aggregates admin's rules).
		Expect(c.admin.Create(ctx, &rbacv1.ClusterRole{ObjectMeta: metav1.ObjectMeta{Name: "namespace-admin"},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles", "rolebindings"}, Verbs: []string{"*"}},
				{APIGroups: []string{""}, Resources: []string{"secrets", "configmaps", "pods", "serviceaccounts"}, Verbs: []string{"*"}},
			}})).To(Succeed())

		// The administrator may offer identity provider groups through a policy, as a
		// platform team would; RBAC delegation never allows them.
		Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "admin-idp-groups"},
			Spec: invitesv1alpha1.RoleGrantPolicySpec{
				Inviters:           []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "e2e-admin"}},
				GrantableRoles:     []invitesv1alpha1.GrantableRole{{Role: "pod-reader"}},
				GrantableIDPGroups: []string{"oncall"},
			},
		})).To(Succeed())
	})

	Context("bindings that drive the identity provider hook", func() {
		It("ignores a forged binding with rolecall's labels, annotations, finalizer and a made-up seal (namespace admin)", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-forged")
			inv, _ := c.offer(ctx, ns, "victim", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			mallory := c.namespaceAdmin(ctx, ns, "mallory")
			forged := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: "rolecall-forged", Namespace: ns,
					Labels: map[string]string{invitesv1alpha1.ManagedByLabel: invitesv1alpha1.ManagedByValue, invitesv1alpha1.InvitationUIDLabel: string(inv.UID),
						invitesv1alpha1.UserLabel: bindings.UserHash("mallory-friend")},
					Annotations: map[string]string{invitesv1alpha1.UsernameAnnotation: "mallory-friend", invitesv1alpha1.InvitationAnnotation: ns + "/victim",
						invitesv1alpha1.IDPGroupAnnotation: "cluster-admins", invitesv1alpha1.SealAnnotation: strings.Repeat("ab", 32)},
					Finalizers: []string{invitesv1alpha1.IDPGroupFinalizer}},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: "mallory-friend"}},
			}
			Expect(mallory.Create(ctx, forged)).To(Succeed())
			Consistently(func() []map[string]any { return idp.calls("user", "mallory-friend") }).
				WithTimeout(5*time.Second).Should(BeEmpty(), "the hook was called for a binding rolecall did not make")
			Expect(c.latest(ctx, inv).Status.Conditions).NotTo(ContainElement(HaveField("Type", invitesv1alpha1.InvitationIDPGroupsCondition)),
				"a forged binding wrote a condition onto an invitation its author cannot write")

			By("and deleting it asks the identity provider for nothing either")
			Expect(mallory.Delete(ctx, forged)).To(Succeed())
			Consistently(func() []map[string]any { return idp.calls("user", "mallory-friend") }).WithTimeout(3 * time.Second).Should(BeEmpty())
		})

		It("ignores a copy of a sealed idpGroup binding into another namespace, or with another user", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-copy")
			other := c.namespaceWithRole(ctx, "atk-copy-other")
			inv, tok := c.offer(ctx, ns, "oncall", invitesv1alpha1.InvitationSpec{MaxUses: 3,
				Grants: []invitesv1alpha1.Grant{{Role: "pod-reader", IDPGroup: "oncall"}}})
			person := c.redeemers(ctx, ns, 1)[0]
			Expect(redeemVia(ctx, m, nextClient(), person.credential, tok)).To(Equal(http.StatusCreated))
			Eventually(func() []map[string]any { return idp.calls("user", person.username) }).Should(HaveLen(1))
			sealed := c.bindingOf(ctx, inv, person.username)

			mallory := c.namespaceAdmin(ctx, other, "mallory")
			copied := copyBinding(sealed)
			copied.Namespace = other
			Expect(mallory.Create(ctx, copied)).To(Succeed())

			renamed := copyBinding(sealed)
			renamed.Name = "renamed-copy"
			renamed.Annotations[invitesv1alpha1.UsernameAnnotation] = "mallory"
			renamed.Subjects[0].Name = "mallory"
			Expect(c.namespaceAdmin(ctx, ns, "mallory").Create(ctx, renamed)).To(Succeed())

			Consistently(func() []map[string]any { return idp.calls("user", "mallory") }).WithTimeout(4 * time.Second).Should(BeEmpty())
			Expect(idp.calls("user", person.username)).To(HaveLen(1), "one membership, added once")
		})

		// A redemption creates its bindings within moments of its claim (which the seal
		// covers); the API server stamps creationTimestamp, so a copy made later is known.
		It("does not add a person back to the group when a namespace admin recreates their sealed binding after an administrator deleted it", func(ctx SpecContext) {
			ns, person, sealed := c.redeemedIntoGroup(ctx, m, idp, "atk-restore", nil)

			By("an administrator takes the access away")
			Expect(c.admin.Delete(ctx, sealed)).To(Succeed())
			Eventually(func() []map[string]any { return idp.actions(person.username, "remove") }).Should(HaveLen(1))
			Eventually(func() bool {
				return apierrors.IsNotFound(c.admin.Get(ctx, client.ObjectKeyFromObject(sealed), &rbacv1.RoleBinding{}))
			}).Should(BeTrue())

			Expect(idp.actions(person.username, "add")).To(HaveLen(1))

			By("a namespace admin recreates the very binding rolecall made, seal and all, once the moments after the claim are over")
			claimedAt, err := time.Parse(time.RFC3339, sealed.Annotations[invitesv1alpha1.ClaimedAtAnnotation])
			Expect(err).NotTo(HaveOccurred())
			time.Sleep(time.Until(claimedAt.Add(31 * time.Second)))
			Expect(c.namespaceAdmin(ctx, ns, "mallory").Create(ctx, copyBinding(sealed))).To(Succeed())
			Consistently(func() []map[string]any { return idp.actions(person.username, "add") }).
				WithTimeout(5*time.Second).Should(HaveLen(1), "the identity provider membership came back without a new claim")
		})

		It("does not add a person back to the group when a namespace admin recreates a sealed binding whose grantDuration is over", func(ctx SpecContext) {
			ns, person, sealed := c.redeemedIntoGroup(ctx, m, idp, "atk-expired", &metav1.Duration{Duration: 4 * time.Second})
			Eventually(func() []map[string]any { return idp.actions(person.username, "remove") }).Should(HaveLen(1), "the grant expired")
			Expect(idp.actions(person.username, "add")).To(HaveLen(1))

			Expect(c.namespaceAdmin(ctx, ns, "mallory").Create(ctx, copyBinding(sealed))).To(Succeed())
			Consistently(func() []map[string]any { return idp.actions(person.username, "add") }).
				WithTimeout(5*time.Second).Should(HaveLen(1), "an expired grant's membership was added again")
		})

		It("still removes the membership when a namespace admin strips the binding's finalizer before deleting it", func(ctx SpecContext) {
			ns, person, binding := c.redeemedIntoGroup(ctx, m, idp, "atk-finalizer", nil)

			mallory := c.namespaceAdmin(ctx, ns, "mallory")
			patch := client.MergeFrom(binding.DeepCopy())
			binding.Finalizers = nil
			Expect(mallory.Patch(ctx, binding, patch)).To(Succeed())
			Expect(mallory.Delete(ctx, binding)).To(Succeed())
			Eventually(func() []map[string]any { return idp.actions(person.username, "remove") }).WithTimeout(15*time.Second).
				Should(HaveLen(1), "the grant is gone from Kubernetes but the person stays in the identity provider group")
		})

		It("still removes the membership when a namespace admin strips the added-at annotation (and the subjects) before deleting the binding", func(ctx SpecContext) {
			ns, person, binding := c.redeemedIntoGroup(ctx, m, idp, "atk-addedat", nil)

			mallory := c.namespaceAdmin(ctx, ns, "mallory")
			patch := client.MergeFrom(binding.DeepCopy())
			delete(binding.Annotations, invitesv1alpha1.IDPGroupAddedAnnotation)
			// Without subjects the binding no longer "binds only the user", so the controller
			// does not add the membership again when it sees the record gone.
			binding.Subjects = nil
			Expect(mallory.Patch(ctx, binding, patch)).To(Succeed())
			Consistently(func() []map[string]any { return idp.actions(person.username, "add") }).WithTimeout(2 * time.Second).Should(HaveLen(1))
			Expect(mallory.Delete(ctx, binding)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(c.admin.Get(ctx, client.ObjectKeyFromObject(binding), &rbacv1.RoleBinding{}))
			}).Should(BeTrue())
			Eventually(func() any {
				all := idp.calls("user", person.username)
				return all[len(all)-1]["action"]
			}).WithTimeout(15*time.Second).Should(Equal("remove"), "the binding is gone, the membership stays")
		})
	})

	Context("what admission authorizes", func() {
		It("refuses an idpGroup from an inviter who may bind the role but whom no policy lets offer the group, on create and on update", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-idp")
			lead := c.delegate(ctx, ns, "lead")
			inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "group", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader", IDPGroup: "oncall"}}}}
			Expect(lead.Create(ctx, inv)).To(deniedByRolecall())

			By("nor from a policy that lets them offer the role and lists no groups")
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "lead-" + ns},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "lead"}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "pod-reader"}},
				}})).To(Succeed())
			Consistently(func() error { return lead.Create(ctx, inv.DeepCopy()) }).WithTimeout(2 * time.Second).Should(deniedByRolecall())

			plain := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			Expect(lead.Create(ctx, plain)).To(Succeed(), "sanity: the lead may offer the role itself")
			patch := client.MergeFrom(plain.DeepCopy())
			plain.Spec.Grants[0].IDPGroup = "oncall"
			Expect(lead.Patch(ctx, plain, patch)).To(deniedByRolecall())
		})

		It("refuses grants outside the namespaces a policy selects, kube-system included, on create and on update", func(ctx SpecContext) {
			ws := c.namespaceWithRole(ctx, "atk-ws")
			ws2 := c.namespaceWithRole(ctx, "atk-ws2")
			for _, name := range []string{ws, ws2} {
				nsObj := &corev1.Namespace{}
				Expect(c.admin.Get(ctx, client.ObjectKey{Name: name}, nsObj)).To(Succeed())
				nsObj.Labels["invites.rolecall.dev/workshops"] = "allowed"
				Expect(c.admin.Update(ctx, nsObj)).To(Succeed())
			}
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "workshop-bot"},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "workshop-bot"}},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"invites.rolecall.dev/workshops": "allowed"}},
					GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
					Rules: []invitesv1alpha1.PolicyRule{{Expression: "namespaces.all(ns, ns.metadata.name == namespaceObject.metadata.name)",
						Message: "workshop codes grant only in the invitation's own namespace"}},
				},
			})).To(Succeed())
			bot := c.as("workshop-bot")
			c.allow(ctx, ws, "workshop-bot", rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create", "get", "patch", "update"}})
			into := func(name, grantNS string) *invitesv1alpha1.Invitation {
				return &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ws},
					Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view", Namespace: grantNS}}}}
			}
			Expect(bot.Create(ctx, into("kube-system", "kube-system"))).To(deniedByRolecall())
			Expect(bot.Create(ctx, into("sibling", ws2))).To(Satisfy(apierrors.IsForbidden), "the rule sees every namespace a grant lands in")
			own := into("own", "")
			Eventually(func() error { return bot.Create(ctx, own) }).Should(Succeed(), "sanity: the bot may offer view in its own namespace")
			patch := client.MergeFrom(own.DeepCopy())
			own.Spec.Grants = append(own.Spec.Grants, invitesv1alpha1.Grant{ClusterRole: "view", Namespace: "kube-system"})
			Expect(bot.Patch(ctx, own, patch)).To(deniedByRolecall())
		})

		It("refuses upgrade: Replace to an inviter whose policy does not allow it, or who may not delete the bindings it removes", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-replace")
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{
				ObjectMeta: metav1.ObjectMeta{Name: "view-only-" + ns},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "viewbot"}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
				},
			})).To(Succeed())
			c.allow(ctx, ns, "viewbot", rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create", "get", "patch"}})
			viewbot := c.as("viewbot")
			replace := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "replace", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Upgrade: invitesv1alpha1.UpgradeReplace, Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}}}
			Eventually(func() error { return viewbot.Create(ctx, replace.DeepCopy()) }).Should(deniedByRolecall())

			plain := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "plain", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}}}
			Expect(viewbot.Create(ctx, plain)).To(Succeed())
			patch := client.MergeFrom(plain.DeepCopy())
			plain.Spec.Upgrade = invitesv1alpha1.UpgradeReplace
			Expect(viewbot.Patch(ctx, plain, patch)).To(deniedByRolecall())

			By("under RBAC delegation, without delete on rolebindings")
			lead := c.delegate(ctx, ns, "lead")
			delegated := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "delegated", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Upgrade: invitesv1alpha1.UpgradeReplace, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			Expect(lead.Create(ctx, delegated)).To(deniedByRolecall())
		})

		It("refuses a custom token reference to another invitation's Secret, on create and update, and whether or not it exists", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-custom")
			victim, _ := c.offer(ctx, ns, "victim", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			lead := c.delegate(ctx, ns, "lead")
			custom := func(name, secret string) *invitesv1alpha1.Invitation {
				return &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
					Spec: invitesv1alpha1.InvitationSpec{TokenType: invitesv1alpha1.TokenTypeCustom,
						CustomTokenSecretRef: &invitesv1alpha1.SecretReference{Name: secret}, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			}
			Expect(lead.Create(ctx, custom("copy", victim.Status.TokenSecretRef.Name))).To(deniedByRolecall())
			Expect(lead.Create(ctx, custom("missing", "no-such-secret"))).To(deniedByRolecall())

			By("a lead who may read Secrets still may not take an issued token")
			c.allow(ctx, ns, "reader-lead", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}})
			readerLead := c.delegate(ctx, ns, "reader-lead")
			Expect(readerLead.Create(ctx, custom("copy-read", victim.Status.TokenSecretRef.Name))).To(deniedByRolecall())

			By("nor switch an admitted invitation over to it")
			own := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "own", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			Expect(readerLead.Create(ctx, own)).To(Succeed())
			patch := client.MergeFrom(own.DeepCopy())
			own.Spec.TokenType = invitesv1alpha1.TokenTypeCustom
			own.Spec.CustomTokenSecretRef = &invitesv1alpha1.SecretReference{Name: victim.Status.TokenSecretRef.Name}
			Expect(readerLead.Patch(ctx, own, patch)).To(deniedByRolecall())

			By("two invitations never share one custom Secret")
			strong, err := token.NewLink()
			Expect(err).NotTo(HaveOccurred())
			Expect(c.admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "shared", Namespace: ns,
				Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}},
				Data: map[string][]byte{invitesv1alpha1.TokenSecretKey: []byte("Zq" + strong.Value + "x9")}})).To(Succeed())
			Expect(c.admin.Create(ctx, custom("first", "shared"))).To(Succeed())
			Expect(c.admin.Create(ctx, custom("second", "shared"))).To(deniedByRolecall())
		})

		It("counts an inviter's open invitations live: parallel creates do not pass maxActiveInvitationsPerInviter together", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-quota")
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "quota-" + ns},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "quota-" + ns}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "pod-reader"}},
					Limits:         &invitesv1alpha1.PolicyLimits{MaxActiveInvitationsPerInviter: ptr.To[int32](2)},
				}})).To(Succeed())
			c.allow(ctx, ns, "quota-"+ns, rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create"}})
			inviter := c.as("quota-" + ns)
			Eventually(func() error {
				return inviter.Create(ctx, &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
					Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}, client.DryRunAll)
			}).Should(Succeed())
			var created atomic.Int32
			var wg sync.WaitGroup
			for i := range 8 {
				wg.Go(func() {
					err := inviter.Create(ctx, &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("par-%d", i), Namespace: ns},
						Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}})
					if err == nil {
						created.Add(1)
					}
				})
			}
			wg.Wait()
			Expect(created.Load()).To(BeEquivalentTo(2))
		})

		It("refuses email addresses outside a policy's domains, look-alikes and Unicode case tricks included", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-email")
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "mail-" + ns},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "mail-" + ns}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "pod-reader"}},
					Limits:         &invitesv1alpha1.PolicyLimits{RequireEmail: true, AllowedEmailDomains: []string{"bank.test"}},
				}})).To(Succeed())
			c.allow(ctx, ns, "mail-"+ns, rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create"}})
			inviter := c.as("mail-" + ns)
			to := func(name, email string) *invitesv1alpha1.Invitation {
				return &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
					Spec: invitesv1alpha1.InvitationSpec{Email: email, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			}
			Eventually(func() error { return inviter.Create(ctx, to("fine", "eve@BANK.test")) }).Should(Succeed())
			for i, email := range []string{"eve@bank.test.evil.test", "eve@ban\u212a.test", "eve@evil.test,bob@bank.test", "\"eve@evil.test\"@bank.test", "eve@evil.test (x@bank.test)"} {
				err := inviter.Create(ctx, to(fmt.Sprintf("bad-%d", i), email))
				Expect(err).To(HaveOccurred(), "%q was admitted", email)
			}
		})

		It("refuses a grant into a namespace that does not exist (yet) under a namespace selector", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-future")
			nsObj := &corev1.Namespace{}
			Expect(c.admin.Get(ctx, client.ObjectKey{Name: ns}, nsObj)).To(Succeed())
			nsObj.Labels["atk-future"] = "yes"
			Expect(c.admin.Update(ctx, nsObj)).To(Succeed())
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "future-" + ns},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "future-" + ns}},
					NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"atk-future": "yes"}},
					GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
				}})).To(Succeed())
			c.allow(ctx, ns, "future-"+ns, rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create"}})
			inviter := c.as("future-" + ns)
			Eventually(func() error {
				return inviter.Create(ctx, &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "here", Namespace: ns},
					Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}}})
			}).Should(Succeed())
			Expect(inviter.Create(ctx, &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view", Namespace: "prod-" + ns}}}})).To(deniedByRolecall())
		})

		It("refuses an inviter supplied by the client, even one that names the requester with more groups", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-inviter")
			lead := c.delegate(ctx, ns, "lead")
			for i, inviter := range []invitesv1alpha1.Inviter{
				{Username: "lead", Groups: []string{"system:masters", "system:authenticated"}},
				{Username: "e2e-admin", Groups: []string{"system:masters"}},
			} {
				inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("forged-%d", i), Namespace: ns},
					Spec: invitesv1alpha1.InvitationSpec{Inviter: &inviter, Grants: []invitesv1alpha1.Grant{{ClusterRole: "admin"}}}}
				Expect(lead.Create(ctx, inv)).To(deniedByRolecall())
			}
		})

		It("refuses a resend value that would break every later status write", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-longresend")
			inv, _ := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			patch := client.MergeFrom(inv.DeepCopy())
			inv.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: strings.Repeat("r", 300)}
			Expect(c.admin.Patch(ctx, inv, patch)).NotTo(Succeed())
		})

		It("refuses to undo a revocation", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-unrevoke")
			inv, _ := c.offer(ctx, ns, "revoked", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			patch := client.MergeFrom(inv.DeepCopy())
			inv.Spec.Revoked = true
			Expect(c.admin.Patch(ctx, inv, patch)).To(Succeed())
			patch = client.MergeFrom(inv.DeepCopy())
			inv.Spec.Revoked = false
			Expect(c.admin.Patch(ctx, inv, patch)).To(MatchError(ContainSubstring("revoked cannot be undone")))
		})
	})

	Context("tokens", func() {
		It("redeems nothing with a planted token Secret, owned by and labeled for the invitation (a user who may create Secrets)", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-plant")
			inv, _ := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 5, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			c.allow(ctx, ns, "planter",
				rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "update"}},
				rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"get", "list"}})
			planter := c.as("planter")
			mine := inv.Status.TokenID + "." + strings.Repeat("q", 32)
			planted := tokenSecretFor(inv, "welcome-invitation-token-2", mine)
			Expect(planter.Create(ctx, planted)).To(Succeed())
			person := c.redeemers(ctx, ns, 1)[0]
			ip := nextClient()
			status, _ := redeemAs(ctx, m, ip, person.credential, mine)
			Expect(status).To(Equal(http.StatusNotFound))

			By("overwriting the real token Secret with a token of the planter's choosing")
			before := c.latest(ctx, inv)
			Expect(planter.Update(ctx, tokenSecretFor(inv, before.Status.TokenSecretRef.Name, mine))).To(Succeed())
			status, _ = redeemAs(ctx, m, ip, person.credential, mine)
			Expect(status).To(Equal(http.StatusNotFound))
			Eventually(func() string { return c.latest(ctx, inv).Status.TokenID }).ShouldNot(Equal(before.Status.TokenID), "the token is re-issued")
			after := c.latest(ctx, inv)
			Expect(after.Status.ExpiresAt.Time).To(BeTemporally("<=", before.Status.ExpiresAt.Time), "a Secret write extends nothing")
			status, _ = redeemAs(ctx, m, ip, person.credential, mine)
			Expect(status).To(Equal(http.StatusNotFound))
			Expect(c.holders(ctx, inv)).To(BeEmpty())
		})

		It("never lets one custom token answer for two invitations, even from two Secrets", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-twocustom")
			strong, err := token.NewLink()
			Expect(err).NotTo(HaveOccurred())
			value := "Kx" + strong.Value + "7w"
			for _, name := range []string{"one", "two"} {
				Expect(c.admin.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "custom-" + name, Namespace: ns,
					Labels: map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelCustom}},
					Data: map[string][]byte{invitesv1alpha1.TokenSecretKey: []byte(value)}})).To(Succeed())
			}
			// Both at the same moment: the controller's workers check uniqueness in parallel.
			invs := map[string]*invitesv1alpha1.Invitation{}
			var wg sync.WaitGroup
			for _, name := range []string{"one", "two"} {
				inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
					Spec: invitesv1alpha1.InvitationSpec{MaxUses: 5, TokenType: invitesv1alpha1.TokenTypeCustom,
						CustomTokenSecretRef: &invitesv1alpha1.SecretReference{Name: "custom-" + name}, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
				invs[name] = inv
				wg.Go(func() { defer GinkgoRecover(); Expect(c.admin.Create(ctx, inv)).To(Succeed()) })
			}
			wg.Wait()
			Eventually(func() []metav1.ConditionStatus {
				var out []metav1.ConditionStatus
				for _, inv := range invs {
					if cond := meta.FindStatusCondition(c.latest(ctx, inv).Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition); cond != nil {
						out = append(out, cond.Status)
					}
				}
				return out
			}).Should(HaveLen(2))
			time.Sleep(2 * time.Second)
			redeemedFrom := map[string]bool{}
			for _, p := range c.redeemers(ctx, ns, 3) {
				status, body := redeemAs(ctx, m, nextClient(), p.credential, value)
				if status == http.StatusCreated || status == http.StatusOK {
					redeemedFrom[fmt.Sprint(body["invitation"])] = true
				}
			}
			Expect(len(redeemedFrom)).To(BeNumerically("<=", 1), "one token redeemed two invitations: %v", redeemedFrom)
			sealedHolders := 0
			for _, inv := range invs {
				if cond := meta.FindStatusCondition(c.latest(ctx, inv).Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition); cond.Status == metav1.ConditionTrue {
					sealedHolders++
				}
			}
			Expect(sealedHolders).To(BeNumerically("<=", 1), "both invitations say they hold the same token")
		})

		It("counts an IPv6 client by its /64: fresh addresses in one network get no fresh failure budget", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-ipv6")
			inv, _ := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			person := c.redeemers(ctx, ns, 1)[0]
			var statuses []int
			for i := range 25 {
				wrong, err := token.NewLink()
				Expect(err).NotTo(HaveOccurred())
				status, _ := redeemAs(ctx, m, fmt.Sprintf("2001:db8:77:1::%x", i+1), person.credential, wrong.Value)
				statuses = append(statuses, status)
			}
			Expect(statuses).To(ContainElement(http.StatusTooManyRequests), "%v", statuses)
			Expect(c.latest(ctx, inv).Status.Uses).To(BeZero())
		})

		It("extends no invitation's life when its token Secret is deleted (a user who may delete Secrets)", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-delsecret")
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			c.allow(ctx, ns, "deleter", rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"delete"}})
			time.Sleep(1100 * time.Millisecond) // a re-issue now would have a later issuedAt
			Expect(c.as("deleter").Delete(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: inv.Status.TokenSecretRef.Name, Namespace: ns}})).To(Succeed())
			Eventually(func() string { return c.latest(ctx, inv).Status.TokenID }).ShouldNot(Equal(inv.Status.TokenID))
			after := c.latest(ctx, inv)
			Expect(after.Status.ExpiresAt.Time).To(BeTemporally("==", inv.Status.ExpiresAt.Time))
			Expect(after.Status.IssuedAt.Time).To(BeTemporally("==", inv.Status.IssuedAt.Time))
			person := c.redeemers(ctx, ns, 1)[0]
			status, _ := redeemAs(ctx, m, nextClient(), person.credential, tok)
			Expect(status).To(Equal(http.StatusNotFound), "the old token died with its Secret")
		})

		It("stops the old token the moment a resend is written, before the controller re-issues", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-resendrace")
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 20, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			people := c.redeemers(ctx, ns, 12)
			// A crowd redeems while the resend is written: none of them may take a use on
			// the old token after the write.
			var wg sync.WaitGroup
			statuses := make([]int, 6)
			for i := range 6 {
				wg.Go(func() { statuses[i], _ = redeemAs(ctx, m, nextClient(), people[i].credential, tok) })
			}
			patch := client.MergeFrom(inv.DeepCopy())
			inv.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "race-1"}
			Expect(c.admin.Patch(ctx, inv, patch)).To(Succeed())
			usesAtResend := c.latest(ctx, inv).Status.Uses
			for i := 6; i < 12; i++ {
				status, _ := redeemAs(ctx, m, nextClient(), people[i].credential, tok)
				Expect(status).NotTo(BeElementOf(http.StatusOK, http.StatusCreated), "%s redeemed a token a resend had replaced", people[i].username)
			}
			wg.Wait()
			Expect(c.latest(ctx, inv).Status.Uses).To(Equal(usesAtResend))
		})

		It("does not lock the invited person out for an attacker without a credential who knows the token ID", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-lockout")
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			wrong := inv.Status.TokenID + "." + strings.Repeat("z", 32)
			attacker := nextClient()
			for range 15 {
				code, _ := getVia(ctx, m, attacker, "/i/"+wrong)
				Expect(code).NotTo(Equal(http.StatusOK))
				status, _ := redeemAs(ctx, m, attacker, "", wrong)
				Expect(status).NotTo(BeElementOf(http.StatusOK, http.StatusCreated))
			}
			By("from many addresses at once, putting the ID under attack")
			for range 30 {
				ip := nextClient()
				for range 3 {
					_, _ = getVia(ctx, m, ip, "/i/"+wrong)
				}
			}
			victim := nextClient()
			code, _ := getVia(ctx, m, victim, "/i/"+tok)
			Expect(code).To(Equal(http.StatusOK))
			person := c.redeemers(ctx, ns, 1)[0]
			status, body := redeemAs(ctx, m, victim, person.credential, tok)
			Expect(status).To(Equal(http.StatusCreated), "%v", body)
		})

		It("bounds refusals: one credential presenting a spent invitation in a loop is soon answered 429", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-refusals")
			_, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			people := c.redeemers(ctx, ns, 2)
			Expect(redeemVia(ctx, m, nextClient(), people[0].credential, tok)).To(Equal(http.StatusCreated))
			var statuses []int
			for i := range 30 {
				// Each request from a fresh address: the per-user bound must hold alone.
				status, _ := redeemAs(ctx, m, fmt.Sprintf("192.0.2.%d", i+1), people[1].credential, tok)
				statuses = append(statuses, status)
			}
			Expect(statuses[:15]).To(ContainElement(http.StatusTooManyRequests), "%v", statuses)
			Expect(statuses).NotTo(ContainElement(BeElementOf(http.StatusOK, http.StatusCreated)))
		})
	})

	Context("taking access away", func() {
		It("never recreates a binding an administrator deleted when the person presents the token again, at once or in a loop", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-represent")
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 5, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			people := c.redeemers(ctx, ns, 2)

			By("at once")
			Expect(redeemVia(ctx, m, nextClient(), people[0].credential, tok)).To(Equal(http.StatusCreated))
			Expect(c.admin.Delete(ctx, c.bindingOf(ctx, inv, people[0].username))).To(Succeed())
			status, _ := redeemAs(ctx, m, nextClient(), people[0].credential, tok)
			Expect(status).NotTo(BeElementOf(http.StatusOK, http.StatusCreated))
			Consistently(func() map[string]int { return c.holders(ctx, inv) }).WithTimeout(3 * time.Second).ShouldNot(HaveKey(people[0].username))

			By("eight workers re-presenting it while the administrator deletes the binding")
			p := people[1]
			ip := nextClient()
			var deleted atomic.Bool
			var mu sync.Mutex
			var after []int
			stop := time.Now().Add(8 * time.Second)
			var wg sync.WaitGroup
			for range 8 {
				wg.Go(func() {
					for time.Now().Before(stop) {
						wasDeleted := deleted.Load()
						status, _ := redeemAs(ctx, m, ip, p.credential, tok)
						if status == http.StatusCreated && !deleted.Load() {
							if deleted.CompareAndSwap(false, true) {
								Expect(c.admin.Delete(ctx, c.bindingOf(ctx, inv, p.username))).To(Succeed())
							}
							continue
						}
						if wasDeleted {
							mu.Lock()
							after = append(after, status)
							mu.Unlock()
						}
					}
				})
			}
			wg.Wait()
			Expect(deleted.Load()).To(BeTrue())
			Expect(after).NotTo(ContainElement(BeNumerically(">=", 500)), "a binding deleted under a redemption is a refusal, never a 5xx")
			Expect(after).NotTo(ContainElement(http.StatusCreated))
			Consistently(func() map[string]int { return c.holders(ctx, inv) }).WithTimeout(3*time.Second).
				ShouldNot(HaveKey(p.username), "the deleted grant came back")
			Expect(c.latest(ctx, inv).Status.Uses).To(BeEquivalentTo(2))
		})

		It("still takes the grants away when someone who may edit and delete invitations strips the revoke-grants finalizer first", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-revokefin")
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 3, RevokeGrants: true, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			Eventually(func() []string { return c.latest(ctx, inv).Finalizers }).Should(ContainElement(invitesv1alpha1.RevokeGrantsFinalizer))
			person := c.redeemers(ctx, ns, 1)[0]
			Expect(redeemVia(ctx, m, nextClient(), person.credential, tok)).To(Equal(http.StatusCreated))
			Expect(c.holders(ctx, inv)).To(HaveKey(person.username))

			c.allow(ctx, ns, "editor", rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"get", "patch", "delete"}})
			editor := c.as("editor")
			latest := c.latest(ctx, inv)
			patch := client.MergeFrom(latest.DeepCopy())
			latest.Finalizers = nil
			Expect(editor.Patch(ctx, latest, patch)).To(MatchError(ContainSubstring("metadata.finalizers: Forbidden")),
				"RBAC lets the editor patch; admission keeps the finalizer, which only the manager removes")
			Expect(editor.Delete(ctx, latest)).To(Succeed())
			Eventually(func() bool {
				return apierrors.IsNotFound(c.admin.Get(ctx, client.ObjectKeyFromObject(inv), &invitesv1alpha1.Invitation{}))
			}).Should(BeTrue())
			Eventually(func() map[string]int { return c.holders(ctx, inv) }).WithTimeout(15*time.Second).
				ShouldNot(HaveKey(person.username), "the invitation said its grants go with it, and they stayed")
		})

		It("adopts no binding squatting the name rolecall would use, and answers 409 with the use given back (namespace admin)", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-squat")
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			person := c.redeemers(ctx, ns, 1)[0]
			squat := &rbacv1.RoleBinding{
				ObjectMeta: metav1.ObjectMeta{Name: bindingName(inv, person.username, 0), Namespace: ns,
					Labels:      map[string]string{invitesv1alpha1.ManagedByLabel: invitesv1alpha1.ManagedByValue, invitesv1alpha1.InvitationUIDLabel: string(inv.UID), invitesv1alpha1.UserLabel: bindings.UserHash(person.username)},
					Annotations: map[string]string{invitesv1alpha1.UsernameAnnotation: person.username, invitesv1alpha1.InvitationAnnotation: ns + "/welcome", invitesv1alpha1.SealAnnotation: strings.Repeat("cd", 32)}},
				RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: "pod-reader"},
				Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: person.username}},
			}
			Expect(c.namespaceAdmin(ctx, ns, "mallory").Create(ctx, squat)).To(Succeed())
			status, body := redeemAs(ctx, m, nextClient(), person.credential, tok)
			Expect(status).To(Equal(http.StatusConflict), "%v", body)
			Expect(body).To(HaveKeyWithValue("code", "binding_conflict"))
			Eventually(func() int32 { return c.latest(ctx, inv).Status.Uses }).Should(BeZero())
			have := &rbacv1.RoleBinding{}
			Expect(c.admin.Get(ctx, client.ObjectKeyFromObject(squat), have)).To(Succeed())
			Expect(have.Annotations[invitesv1alpha1.SealAnnotation]).To(Equal(strings.Repeat("cd", 32)), "rolecall sealed a binding it did not make")
		})
	})

	Context("writes to invitations/status", func() {
		var statusWriter client.Client
		statusWriterIn := func(ctx context.Context, ns string) client.Client {
			c.allow(ctx, ns, "status-writer",
				rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"get", "list"}},
				rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations/status"}, Verbs: []string{"get", "update", "patch"}})
			return c.as("status-writer")
		}

		It("redeems nothing more with token facts copied from another invitation", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-copyhash")
			statusWriter = statusWriterIn(ctx, ns)
			mine, myTok := c.offer(ctx, ns, "mine", invitesv1alpha1.InvitationSpec{MaxUses: 5, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			Expect(c.admin.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "secret-reader"},
				Rules: []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}}}})).To(Succeed())
			richer, _ := c.offer(ctx, ns, "richer", invitesv1alpha1.InvitationSpec{MaxUses: 5, Grants: []invitesv1alpha1.Grant{{Role: "secret-reader"}}})
			Eventually(func() error {
				target := &invitesv1alpha1.Invitation{}
				if err := statusWriter.Get(ctx, client.ObjectKeyFromObject(richer), target); err != nil {
					return err
				}
				from := c.latest(ctx, mine).Status
				target.Status.TokenID, target.Status.TokenHash, target.Status.TokenSeal = from.TokenID, from.TokenHash, from.TokenSeal
				target.Status.IssuedAt, target.Status.ExpiresAt = from.IssuedAt, from.ExpiresAt
				return statusWriter.Status().Update(ctx, target)
			}).Should(Succeed())
			person := c.redeemers(ctx, ns, 1)[0]
			status, body := redeemAs(ctx, m, nextClient(), person.credential, myTok)
			Expect(status).To(Equal(http.StatusCreated), "%v", body)
			Expect(body).To(HaveKeyWithValue("invitation", "mine"))
			Consistently(func() map[string]int { return c.holders(ctx, richer) }).WithTimeout(2 * time.Second).Should(BeEmpty())
		})

		It("grants nothing for a forged pending claim, sealed or not", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-pending")
			statusWriter = statusWriterIn(ctx, ns)
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 5, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			people := c.redeemers(ctx, ns, 2)
			// A real claim's seal, captured as it passed through status, copied to another user.
			var captured invitesv1alpha1.PendingRedemption
			done := make(chan struct{})
			go func() {
				defer GinkgoRecover()
				defer close(done)
				Eventually(func() []invitesv1alpha1.PendingRedemption { return c.latest(ctx, inv).Status.PendingRedemptions }).
					WithPolling(5 * time.Millisecond).ShouldNot(BeEmpty())
				captured = c.latest(ctx, inv).Status.PendingRedemptions[0]
			}()
			time.Sleep(50 * time.Millisecond)
			Expect(redeemVia(ctx, m, nextClient(), people[0].credential, tok)).To(Equal(http.StatusCreated))
			<-done
			forged := []invitesv1alpha1.PendingRedemption{
				{User: "system:serviceaccount:" + ns + ":never-redeemed", ClaimedAt: metav1.Now()},
				{User: people[1].username, ClaimedAt: captured.ClaimedAt, Seal: captured.Seal},
			}
			Eventually(func() error {
				target := &invitesv1alpha1.Invitation{}
				if err := statusWriter.Get(ctx, client.ObjectKeyFromObject(inv), target); err != nil {
					return err
				}
				target.Status.PendingRedemptions = append(target.Status.PendingRedemptions, forged...)
				target.Status.Redemptions = append(target.Status.Redemptions, invitesv1alpha1.Redemption{User: people[1].username, RedeemedAt: metav1.Now()})
				return statusWriter.Status().Update(ctx, target)
			}).Should(Succeed())
			Consistently(func() map[string]int { return c.holders(ctx, inv) }).WithTimeout(5 * time.Second).
				Should(SatisfyAll(HaveLen(1), HaveKey(people[0].username)))
		})

		It("brings no expired or rotated token back by moving expiresAt or restoring an old status", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-expiry")
			statusWriter = statusWriterIn(ctx, ns)
			inv, tok := c.offer(ctx, ns, "short", invitesv1alpha1.InvitationSpec{MaxUses: 5, ExpiresAfter: &metav1.Duration{Duration: 3 * time.Second},
				Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			Eventually(func() invitesv1alpha1.InvitationPhase { return c.latest(ctx, inv).Status.Phase }).Should(Equal(invitesv1alpha1.PhaseExpired))
			Eventually(func() error {
				target := &invitesv1alpha1.Invitation{}
				if err := statusWriter.Get(ctx, client.ObjectKeyFromObject(inv), target); err != nil {
					return err
				}
				later := metav1.NewTime(time.Now().Add(time.Hour))
				target.Status.ExpiresAt = &later
				target.Status.Phase = invitesv1alpha1.PhaseActive
				return statusWriter.Status().Update(ctx, target)
			}).Should(Succeed())
			people := c.redeemers(ctx, ns, 2)
			status, _ := redeemAs(ctx, m, nextClient(), people[0].credential, tok)
			Expect(status).NotTo(BeElementOf(http.StatusOK, http.StatusCreated), "an expired token redeemed after a status edit")

			By("restoring the status a resend replaced")
			ns2 := c.namespaceWithRole(ctx, "atk-restore-status")
			writer2 := statusWriterIn(ctx, ns2)
			inv2, tok2 := c.offer(ctx, ns2, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 5, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			old := c.latest(ctx, inv2).Status.DeepCopy()
			patch := client.MergeFrom(inv2.DeepCopy())
			inv2.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "leaked"}
			Expect(c.admin.Patch(ctx, inv2, patch)).To(Succeed())
			Eventually(func() string { return c.latest(ctx, inv2).Status.TokenID }).ShouldNot(Equal(old.TokenID))
			Eventually(func() error {
				target := &invitesv1alpha1.Invitation{}
				if err := writer2.Get(ctx, client.ObjectKeyFromObject(inv2), target); err != nil {
					return err
				}
				target.Status.TokenID, target.Status.TokenHash, target.Status.TokenSeal = old.TokenID, old.TokenHash, old.TokenSeal
				target.Status.IssuedAt, target.Status.ExpiresAt, target.Status.TokenSecretRef = old.IssuedAt, old.ExpiresAt, old.TokenSecretRef
				return writer2.Status().Update(ctx, target)
			}).Should(Succeed())
			person := c.redeemers(ctx, ns2, 1)[0]
			status, _ = redeemAs(ctx, m, nextClient(), person.credential, tok2)
			Expect(status).To(Equal(http.StatusNotFound), "the token a resend replaced redeemed again")
		})

		It("does not reopen an invitation policy now denies by rewriting its phase and conditions", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-denied")
			statusWriter = statusWriterIn(ctx, ns)
			policy := &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: "pl-" + ns},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "pl-" + ns}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "pod-reader"}},
				}}
			Expect(c.admin.Create(ctx, policy)).To(Succeed())
			c.allow(ctx, ns, "pl-"+ns, rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create", "get"}})
			inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{MaxUses: 3, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			Eventually(func() error { return c.as("pl-"+ns).Create(ctx, inv) }).Should(Succeed())
			tok := c.waitToken(ctx, inv)
			Expect(c.admin.Delete(ctx, policy)).To(Succeed())
			Eventually(func() invitesv1alpha1.InvitationPhase { return c.latest(ctx, inv).Status.Phase }).Should(Equal(invitesv1alpha1.PhaseDenied))
			Eventually(func() error {
				target := &invitesv1alpha1.Invitation{}
				if err := statusWriter.Get(ctx, client.ObjectKeyFromObject(inv), target); err != nil {
					return err
				}
				target.Status.Phase = invitesv1alpha1.PhaseActive
				meta.SetStatusCondition(&target.Status.Conditions, metav1.Condition{Type: invitesv1alpha1.InvitationPolicyAllowedCondition,
					Status: metav1.ConditionTrue, Reason: "Allowed", Message: "forged"})
				return statusWriter.Status().Update(ctx, target)
			}).Should(Succeed())
			person := c.redeemers(ctx, ns, 1)[0]
			status, body := redeemAs(ctx, m, nextClient(), person.credential, tok)
			Expect(status).To(Equal(http.StatusForbidden), "%v", body)
			Expect(c.holders(ctx, inv)).To(BeEmpty())
		})

		// Only creating the invitation or changing its resend annotation (both authorized by
		// admission) starts a token's life; a status whose sealed record is gone starts none.
		It("does not extend an invitation's life by wiping its token facts to force a re-issue", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-wipe")
			statusWriter = statusWriterIn(ctx, ns)
			inv, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{MaxUses: 3, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			time.Sleep(1100 * time.Millisecond)
			Eventually(func() error {
				target := &invitesv1alpha1.Invitation{}
				if err := statusWriter.Get(ctx, client.ObjectKeyFromObject(inv), target); err != nil {
					return err
				}
				target.Status.TokenHash, target.Status.TokenSeal = "", ""
				return statusWriter.Status().Update(ctx, target)
			}).Should(Succeed())
			Eventually(func() string { return c.latest(ctx, inv).Status.TokenID }).ShouldNot(Equal(inv.Status.TokenID))
			person := c.redeemers(ctx, ns, 1)[0]
			status, _ := redeemAs(ctx, m, nextClient(), person.credential, tok)
			Expect(status).To(Equal(http.StatusNotFound), "the wiped token still redeems")
			after := c.latest(ctx, inv)
			Expect(after.Status.TokenID).To(BeEmpty(), "no new token: the invitation waits for a resend")
			Expect(after.Status.ExpiresAt).To(BeNil(), "a status writer restarted the invitation's expiry without any authorization")
			Expect(after.Status.Phase).To(Equal(invitesv1alpha1.PhasePending))
		})
	})

	Context("resends and mail", func() {
		It("sends one mail for a burst of resends, and lets nobody without the right resend", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-bomb")
			to := "bob@" + ns + ".test"
			inv, _ := c.offer(ctx, ns, "bob", invitesv1alpha1.InvitationSpec{Email: to, HideInviter: true,
				Delivery: &invitesv1alpha1.Delivery{Email: true}, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			msg := onlyMessageTo(ctx, mail, to)
			Expect(msg.Text).To(ContainSubstring("e2e-admin"), "hideInviter hides nobody in the mail")

			for i := range 10 {
				Eventually(func() error {
					latest := c.latest(ctx, inv)
					patch := client.MergeFrom(latest.DeepCopy())
					latest.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: strconv.Itoa(i)}
					return c.admin.Patch(ctx, latest, patch)
				}).Should(Succeed())
			}
			Consistently(func() ([]mailpit.Summary, error) { return messagesTo(ctx, mail, to) }).WithTimeout(6 * time.Second).Should(HaveLen(1))

			By("someone who may patch invitations but offer nothing")
			c.allow(ctx, ns, "stranger", rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"get", "patch"}})
			stranger := c.as("stranger")
			latest := c.latest(ctx, inv)
			patch := client.MergeFrom(latest.DeepCopy())
			latest.Annotations[invitesv1alpha1.ResendAnnotation] = "stranger"
			Expect(stranger.Patch(ctx, latest, patch)).To(deniedByRolecall())
		})

		It("lets an inviter who has left the group that allowed them resend nothing", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "atk-leftgroup")
			group := "leads-" + ns
			Expect(c.admin.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: group},
				Spec: invitesv1alpha1.RoleGrantPolicySpec{
					Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: group}},
					GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "pod-reader"}},
				}})).To(Succeed())
			c.allow(ctx, ns, "gl", rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create", "get", "patch"}})
			inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns},
				Spec: invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}}}
			Eventually(func() error { return c.as("gl", group).Create(ctx, inv) }).Should(Succeed())
			c.waitToken(ctx, inv)
			latest := c.latest(ctx, inv)
			patch := client.MergeFrom(latest.DeepCopy())
			latest.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "after-leaving"}
			Expect(c.as("gl").Patch(ctx, latest, patch)).To(deniedByRolecall())
			patch = client.MergeFrom(latest.DeepCopy())
			latest.Spec.MaxUses = 50
			Expect(c.as("gl").Patch(ctx, latest, patch)).To(deniedByRolecall())
		})
	})

	Context("the discovery ConfigMap for kubectl invite", func() {
		It("is published by the manager, readable by any authenticated user and writable by none of them", func(ctx SpecContext) {
			cm := &corev1.ConfigMap{}
			Eventually(func() error {
				return c.admin.Get(ctx, client.ObjectKey{Namespace: invitesv1alpha1.DiscoveryNamespace, Name: invitesv1alpha1.DiscoveryConfigMap}, cm)
			}).Should(Succeed())
			Expect(cm.Data).To(HaveKeyWithValue(invitesv1alpha1.DiscoveryRedeemURLKey, m.redeemURL))
			nobody := c.as("nobody")
			cm.Data[invitesv1alpha1.DiscoveryRedeemURLKey] = "https://evil.example.test"
			Expect(nobody.Update(ctx, cm)).To(Satisfy(apierrors.IsForbidden))
		})

		It("keeps kubectl invite redeem from sending a credential to the host of a phishing link", func(ctx SpecContext) {
			cli, err := gexec.Build("github.com/rolecall/rolecall/cmd/kubectl-invite")
			Expect(err).NotTo(HaveOccurred())
			var hits atomic.Int32
			evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				hits.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"code":"already_redeemed","message":"you already hold these roles"}`))
			}))
			DeferCleanup(evil.Close)
			ns := c.namespaceWithRole(ctx, "atk-phish")
			_, tok := c.offer(ctx, ns, "welcome", invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}})
			person := c.redeemers(ctx, ns, 1)[0]
			kubeconfig := c.writeKubeconfig("")
			for _, env := range [][]string{nil, {"ROLECALL_REDEEM_URL=" + m.redeemURL}} {
				cmd := exec.CommandContext(ctx, cli, "redeem", evil.URL+"/i/"+tok, "--kubeconfig", kubeconfig, "--token", person.credential) //nolint:gosec // the binary this spec built
				cmd.Env = append(os.Environ(), env...)
				session, err := gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
				Expect(err).NotTo(HaveOccurred())
				Eventually(session).WithTimeout(time.Minute).Should(gexec.Exit())
				Expect(session.ExitCode()).NotTo(BeZero(), "the plugin reported success for a phishing link")
				Expect(hits.Load()).To(BeZero(), "the phishing server received a request")
			}
		})
	})
})

// idpReceiver stands in for the identity provider's hook service and records every call.
type idpReceiver struct {
	server *httptest.Server
	mu     sync.Mutex
	bodies []map[string]any
}

func newIDPReceiver() *idpReceiver {
	r := &idpReceiver{}
	r.server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		var decoded map[string]any
		_ = json.Unmarshal(body, &decoded)
		r.mu.Lock()
		r.bodies = append(r.bodies, decoded)
		r.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	DeferCleanup(r.server.Close)
	return r
}

func (r *idpReceiver) calls(key, value string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, b := range r.bodies {
		if b[key] == value {
			out = append(out, b)
		}
	}
	return out
}

func (r *idpReceiver) actions(user, action string) []map[string]any {
	var out []map[string]any
	for _, b := range r.calls("user", user) {
		if b["action"] == action {
			out = append(out, b)
		}
	}
	return out
}

// as is a client that acts as the user, impersonated by the administrator.
func (c *cluster) as(user string, groups ...string) client.Client {
	GinkgoHelper()
	cfg := rest.CopyConfig(c.env.Config)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	cl, err := client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	return cl
}

// allow gives the user the rules in the namespace, with a Role and a RoleBinding of their own.
func (c *cluster) allow(ctx context.Context, ns, user string, rules ...rbacv1.PolicyRule) {
	GinkgoHelper()
	role := &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{GenerateName: "attacker-", Namespace: ns}, Rules: rules}
	Expect(c.admin.Create(ctx, role)).To(Succeed())
	Expect(c.admin.Create(ctx, &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{GenerateName: "attacker-", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}})).To(Succeed())
	r := rules[0]
	c.waitAllowed(ctx, user, authorizationv1.ResourceAttributes{Namespace: ns, Verb: r.Verbs[0], Group: r.APIGroups[0], Resource: r.Resources[0]})
}

// waitAllowed waits until the API server's authorizer has caught up with a new grant.
func (c *cluster) waitAllowed(ctx context.Context, user string, attrs authorizationv1.ResourceAttributes) {
	GinkgoHelper()
	Eventually(func() (bool, error) {
		review, err := c.clientset.AuthorizationV1().SubjectAccessReviews().Create(ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: user, ResourceAttributes: &attrs}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return review.Status.Allowed, nil
	}).Should(BeTrue())
}

// deniedByRolecall: the API server let the request through to rolecall's admission
// webhook, which refused it (not RBAC refusing the attacker earlier).
func deniedByRolecall() OmegaMatcher {
	return MatchError(ContainSubstring("denied the request"))
}

// namespaceAdmin makes the user an admin of the namespace (the rights of admin that matter here).
func (c *cluster) namespaceAdmin(ctx context.Context, ns, user string) client.Client {
	GinkgoHelper()
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "admin-" + user, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "namespace-admin"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}}}
	if err := c.admin.Create(ctx, rb); !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	c.waitAllowed(ctx, user, authorizationv1.ResourceAttributes{Namespace: ns, Verb: "create", Group: rbacv1.GroupName, Resource: "rolebindings"})
	return c.as(user)
}

// delegate lets the user bind pod-reader in the namespace and write invitations there, so
// that RBAC delegation allows them to offer pod-reader and nothing else.
func (c *cluster) delegate(ctx context.Context, ns, user string) client.Client {
	GinkgoHelper()
	c.allow(ctx, ns, user,
		rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"rolebindings"}, Verbs: []string{"create"}},
		rbacv1.PolicyRule{APIGroups: []string{rbacv1.GroupName}, Resources: []string{"roles"}, Verbs: []string{"bind"}, ResourceNames: []string{"pod-reader"}},
		rbacv1.PolicyRule{APIGroups: []string{invitesv1alpha1.GroupVersion.Group}, Resources: []string{"invitations"}, Verbs: []string{"create", "get", "patch", "update"}})
	return c.as(user)
}

// offer creates an invitation as the administrator and waits for its token.
func (c *cluster) offer(ctx context.Context, ns, name string, spec invitesv1alpha1.InvitationSpec) (*invitesv1alpha1.Invitation, string) {
	GinkgoHelper()
	inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: spec}
	Expect(c.admin.Create(ctx, inv)).To(Succeed())
	tok := c.waitToken(ctx, inv)
	return c.latest(ctx, inv), tok
}

// waitToken waits for the invitation's token Secret to hold the token status names.
func (c *cluster) waitToken(ctx context.Context, inv *invitesv1alpha1.Invitation) string {
	GinkgoHelper()
	var tok string
	Eventually(func(g Gomega) {
		latest := c.latest(ctx, inv)
		g.Expect(latest.Status.TokenID).NotTo(BeEmpty())
		secret := c.tokenSecret(ctx, latest)
		tok = string(secret.Data[invitesv1alpha1.TokenSecretKey])
		g.Expect(tok).To(HavePrefix(latest.Status.TokenID))
	}).Should(Succeed())
	return tok
}

// bindingOf is the RoleBinding rolecall made for the user's first grant, read live.
// redeemedIntoGroup offers, in a fresh namespace, an invitation whose grant also adds the
// person to the identity provider group oncall, redeems it, waits for the hook's add and
// returns the sealed binding rolecall made.
func (c *cluster) redeemedIntoGroup(ctx context.Context, m *managerProcess, idp *idpReceiver, prefix string, grantDuration *metav1.Duration) (string, redeemer, *rbacv1.RoleBinding) {
	GinkgoHelper()
	ns := c.namespaceWithRole(ctx, prefix)
	inv, tok := c.offer(ctx, ns, "oncall", invitesv1alpha1.InvitationSpec{MaxUses: 3, GrantDuration: grantDuration,
		Grants: []invitesv1alpha1.Grant{{Role: "pod-reader", IDPGroup: "oncall"}}})
	person := c.redeemers(ctx, ns, 1)[0]
	Expect(redeemVia(ctx, m, nextClient(), person.credential, tok)).To(Equal(http.StatusCreated))
	Eventually(func() []map[string]any { return idp.actions(person.username, "add") }).Should(HaveLen(1))
	Eventually(func() string {
		return c.bindingOf(ctx, inv, person.username).Annotations[invitesv1alpha1.IDPGroupAddedAnnotation]
	}).ShouldNot(BeEmpty())
	return ns, person, c.bindingOf(ctx, inv, person.username)
}

func (c *cluster) bindingOf(ctx context.Context, inv *invitesv1alpha1.Invitation, username string) *rbacv1.RoleBinding {
	GinkgoHelper()
	rb := &rbacv1.RoleBinding{}
	Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: bindingName(inv, username, 0)}, rb)).To(Succeed())
	return rb
}

// bindingName is the name rolecall gives a grant's binding: anyone who can read the
// invitation's UID can compute it.
func bindingName(inv *invitesv1alpha1.Invitation, username string, grant int) string {
	sum := sha256.Sum256([]byte(string(inv.UID) + "\x00" + username + "\x00" + strconv.Itoa(grant)))
	return "rolecall-" + hex.EncodeToString(sum[:10])
}

// copyBinding is what someone who may read a binding can write again: everything but
// what the API server sets, and the hook's record that it added the membership.
func copyBinding(rb *rbacv1.RoleBinding) *rbacv1.RoleBinding {
	out := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: rb.Name, Namespace: rb.Namespace,
		Labels: map[string]string{}, Annotations: map[string]string{}, Finalizers: rb.Finalizers},
		RoleRef: rb.RoleRef, Subjects: rb.Subjects}
	for k, v := range rb.Labels {
		out.Labels[k] = v
	}
	for k, v := range rb.Annotations {
		if k != invitesv1alpha1.IDPGroupAddedAnnotation {
			out.Annotations[k] = v
		}
	}
	return out
}

// tokenSecretFor is a Secret that claims to hold the invitation's token.
func tokenSecretFor(inv *invitesv1alpha1.Invitation, name, value string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: inv.Namespace,
			Labels:      map[string]string{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelIssued, invitesv1alpha1.InvitationNameLabel: inv.Name},
			Annotations: map[string]string{invitesv1alpha1.TokenIDAnnotation: inv.Status.TokenID, "invites.rolecall.dev/token-type": string(inv.Spec.TokenType)},
			OwnerReferences: []metav1.OwnerReference{{APIVersion: invitesv1alpha1.GroupVersion.String(), Kind: "Invitation",
				Name: inv.Name, UID: inv.UID, Controller: ptr.To(true)}}},
		Data: map[string][]byte{invitesv1alpha1.TokenSecretKey: []byte(value), invitesv1alpha1.URLSecretKey: []byte("https://invite.example.test/i/" + value)},
	}
}

var clientCount atomic.Int32

// nextClient is an address no other request of this suite comes from.
func nextClient() string {
	n := clientCount.Add(1)
	return fmt.Sprintf("10.77.%d.%d", n/250, n%250+1)
}

// redeemAs posts a redemption as the client at ip, forwarded by the trusted proxy.
func redeemAs(ctx context.Context, m *managerProcess, ip, credential, tok string) (int, map[string]any) {
	return redeemForwarded(ctx, m.redeemURL, ip, credential, tok)
}

// redeemVia is redeemAs's status alone.
func redeemVia(ctx context.Context, m *managerProcess, ip, credential, tok string) int {
	status, _ := redeemAs(ctx, m, ip, credential, tok)
	return status
}

// getVia opens a page as the client at ip.
func getVia(ctx context.Context, m *managerProcess, ip, path string) (int, string) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.redeemURL+path, nil)
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("X-Forwarded-For", ip)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, ""
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
