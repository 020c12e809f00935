package redeem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/redeem"
)

// admin is what the admission webhook would record for a cluster administrator.
var admin = &invitesv1alpha1.Inviter{Username: "platform-admin", Groups: []string{"system:masters", "system:authenticated"}}

type answer struct {
	status     int
	body       map[string]any
	retryAfter string
}

// redeemAt posts a redemption to one replica, as a person with this credential.
func redeemAt(ctx context.Context, r *replica, credential, tok string) answer {
	body, err := json.Marshal(map[string]string{"token": tok})
	Expect(err).NotTo(HaveOccurred())
	return post(ctx, r, credential, body)
}

func post(ctx context.Context, r *replica, credential string, body []byte) answer {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/api/v1/redemptions", bytes.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	a := answer{status: resp.StatusCode, body: map[string]any{}, retryAfter: resp.Header.Get("Retry-After")}
	Expect(json.Unmarshal(raw, &a.body)).To(Succeed(), string(raw))
	return a
}

func person(name string, mutate ...func(*identity.User)) string {
	u := identity.User{Username: "oidc:" + name, Groups: []string{"oidc:staff"}}
	for _, m := range mutate {
		m(&u)
	}
	credential := "cred-" + name
	people.add(credential, u)
	return credential
}

func withEmail(email string, verified bool) func(*identity.User) {
	return func(u *identity.User) { u.Email, u.EmailVerified = email, verified }
}

func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "redeem-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	// A role with real rules: envtest has no controller manager to fill the aggregated ones.
	Expect(k8sClient.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "deployer"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"apps"}, Resources: []string{"deployments"}, Verbs: []string{"create", "get", "list"}}},
	})).To(Succeed())
	return ns.Name
}

// issue creates an invitation and waits for its token.
func issue(ctx context.Context, ns string, mutate ...func(*invitesv1alpha1.InvitationSpec)) (*invitesv1alpha1.Invitation, string) {
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "inv-", Namespace: ns},
		Spec: invitesv1alpha1.InvitationSpec{
			Grants: []invitesv1alpha1.Grant{{Role: "deployer"}}, MaxUses: 1,
			ExpiresAfter: &metav1.Duration{Duration: time.Hour}, Inviter: admin,
		},
	}
	for _, m := range mutate {
		if m != nil {
			m(&inv.Spec)
		}
	}
	Expect(k8sClient.Create(ctx, inv)).To(Succeed())
	var value string
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
		g.Expect(inv.Status.Phase).To(Equal(invitesv1alpha1.PhaseActive))
		secret := &corev1.Secret{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: inv.Status.TokenSecretRef.Name}, secret)).To(Succeed())
		g.Expect(secret.Annotations).To(HaveKeyWithValue("invites.rolecall.dev/token-id", inv.Status.TokenID))
		value = string(secret.Data["token"])
	}).Should(Succeed())
	// Both replicas' caches must have the token before a test can expect either to find it.
	// The landing page answers 200 once a replica knows the token, and a token it knows
	// costs no client its failure budget.
	for _, r := range replicas {
		Eventually(func() int { return landingStatus(ctx, r, value) }).Should(Equal(http.StatusOK))
	}
	return inv, value
}

// eventuallyFound waits until a replica's cache knows the token.
func redeemEventually(ctx context.Context, r *replica, credential, tok string) answer {
	var a answer
	Eventually(func() int { a = redeemAt(ctx, r, credential, tok); return a.status }).ShouldNot(Equal(http.StatusNotFound))
	return a
}

func can(ctx context.Context, user, verb, ns string) bool {
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: user, Groups: []string{"system:authenticated"},
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: ns, Verb: verb, Group: "apps", Resource: "deployments"},
	}}
	Expect(k8sClient.Create(ctx, sar)).To(Succeed())
	return sar.Status.Allowed
}

func bindingsOf(ctx context.Context, inv *invitesv1alpha1.Invitation) []rbacv1.RoleBinding {
	var list rbacv1.RoleBindingList
	Expect(k8sClient.List(ctx, &list, client.MatchingLabels{invitesv1alpha1.InvitationUIDLabel: string(inv.UID)})).To(Succeed())
	return list.Items
}

func latest(ctx context.Context, inv *invitesv1alpha1.Invitation) *invitesv1alpha1.Invitation {
	out := &invitesv1alpha1.Invitation{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), out)).To(Succeed())
	return out
}

var _ = Describe("Redeeming", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("binds the promised role to exactly the user's name, which then works", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns)
		alice := person("alice")
		Expect(can(ctx, "oidc:alice", "create", ns)).To(BeFalse())

		a := redeemEventually(ctx, replicas[0], alice, tok)
		Expect(a.status).To(Equal(http.StatusCreated), "%v", a.body)
		Expect(a.body).To(HaveKeyWithValue("user", "oidc:alice"))
		Expect(a.body).To(HaveKeyWithValue("invitation", inv.Name))
		Expect(a.body["grants"]).To(HaveLen(1))
		Expect(fmt.Sprint(a.body)).NotTo(ContainSubstring(tok))

		rbs := bindingsOf(ctx, inv)
		Expect(rbs).To(HaveLen(1))
		Expect(rbs[0].Subjects).To(Equal([]rbacv1.Subject{{Kind: "User", APIGroup: rbacv1.GroupName, Name: "oidc:alice"}}))
		Expect(rbs[0].Annotations).To(HaveKeyWithValue(invitesv1alpha1.UsernameAnnotation, "oidc:alice"))
		Expect(rbs[0].Labels).To(HaveKeyWithValue(invitesv1alpha1.UserLabel, bindings.UserHash("oidc:alice")))
		Eventually(func() bool { return can(ctx, "oidc:alice", "create", ns) }).Should(BeTrue())
		Expect(can(ctx, "oidc:alice", "delete", ns)).To(BeFalse(), "nothing beyond the role")

		after := latest(ctx, inv)
		Expect(after.Status.Uses).To(BeEquivalentTo(1))
		Eventually(settled(ctx, inv)).WithPolling(250 * time.Millisecond).Should(BeEmpty())
		Expect(after.Status.Redemptions).To(ConsistOf(HaveField("User", "oidc:alice")))
	})

	It("is idempotent for the same person: 200, the same body, no use taken", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 2 })
		bob := person("bob")
		first := redeemEventually(ctx, replicas[0], bob, tok)
		Expect(first.status).To(Equal(http.StatusCreated))
		again := redeemAt(ctx, replicas[1], bob, tok)
		Expect(again.status).To(Equal(http.StatusOK))
		Expect(again.body["grants"]).To(Equal(first.body["grants"]))
		Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
	})

	DescribeTable("refuses, with the promised status and code",
		func(ctx SpecContext, mutate func(*invitesv1alpha1.InvitationSpec), prepare func(context.Context, *invitesv1alpha1.Invitation), credential func() string, status int, code string) {
			inv, tok := issue(ctx, ns, mutate)
			if prepare != nil {
				prepare(ctx, inv)
			}
			Eventually(func(g Gomega) {
				a := redeemAt(ctx, replicas[0], credential(), tok)
				g.Expect(a.status).To(Equal(status), "%v", a.body)
				g.Expect(a.body).To(HaveKeyWithValue("code", code))
				g.Expect(a.body).To(HaveKey("message"))
			}).Should(Succeed())
			Expect(bindingsOf(ctx, inv)).To(BeEmpty())
		},
		Entry("a used-up invitation", nil, func(ctx context.Context, inv *invitesv1alpha1.Invitation) {
			Expect(redeemEventually(ctx, replicas[0], person("first"), tokenOf(ctx, inv)).status).To(Equal(http.StatusCreated))
			Expect(k8sClient.DeleteAllOf(ctx, &rbacv1.RoleBinding{}, client.InNamespace(inv.Namespace), client.MatchingLabels{invitesv1alpha1.UserLabel: bindings.UserHash("oidc:first")})).To(Succeed())
		}, func() string { return person("second") }, http.StatusGone, "exhausted"),
		Entry("a revoked invitation", nil, func(ctx context.Context, inv *invitesv1alpha1.Invitation) {
			Expect(k8sClient.Patch(ctx, inv, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`)))).To(Succeed())
		}, func() string { return person("carol") }, http.StatusGone, "revoked"),
		Entry("an expired invitation", nil, func(context.Context, *invitesv1alpha1.Invitation) {
			fakeClock.Step(2 * time.Hour)
		}, func() string { return person("dan") }, http.StatusGone, "expired"),
		Entry("someone else's private invitation", func(s *invitesv1alpha1.InvitationSpec) { s.Email = "alice@example.com" }, nil,
			func() string { return person("mallory", withEmail("mallory@example.com", true)) }, http.StatusForbidden, "email_mismatch"),
		Entry("a private invitation, with the email unverified", func(s *invitesv1alpha1.InvitationSpec) { s.Email = "alice@example.com" }, nil,
			func() string { return person("alice-unverified", withEmail("alice@example.com", false)) }, http.StatusForbidden, "email_unverified"),
		Entry("a private invitation, with no email at all", func(s *invitesv1alpha1.InvitationSpec) { s.Email = "alice@example.com" }, nil,
			func() string { return person("robot") }, http.StatusForbidden, "email_unverified"),
		Entry("an unknown credential", nil, nil, func() string { return "forged" }, http.StatusUnauthorized, "unauthenticated"),
		Entry("no credential", nil, nil, func() string { return "" }, http.StatusUnauthorized, "unauthenticated"),
	)

	Context("for a person it already counted, whose grants were removed since", func() {
		DescribeTable("does not bring the grants back when the token is presented again",
			func(ctx SpecContext, close func(context.Context, *invitesv1alpha1.Invitation), code string) {
				inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 3 })
				erin := person("erin")
				Expect(redeemEventually(ctx, replicas[0], erin, tok).status).To(Equal(http.StatusCreated))
				Eventually(settled(ctx, inv)).WithPolling(250 * time.Millisecond).Should(BeEmpty())
				Expect(k8sClient.DeleteAllOf(ctx, &rbacv1.RoleBinding{}, client.InNamespace(ns),
					client.MatchingLabels{invitesv1alpha1.UserLabel: bindings.UserHash("oidc:erin")})).To(Succeed())
				if close != nil {
					close(ctx, inv)
				}

				for _, r := range replicas {
					Eventually(func(g Gomega) {
						a := redeemAt(ctx, r, erin, tok)
						g.Expect(a.status).To(Equal(http.StatusGone), "%v", a.body)
						g.Expect(a.body).To(HaveKeyWithValue("code", code))
					}).Should(Succeed())
				}
				Consistently(func() []rbacv1.RoleBinding { return bindingsOf(ctx, inv) }).WithTimeout(time.Second).Should(BeEmpty())
				Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
			},
			Entry("removed by hand, the invitation still open", nil, "grants_removed"),
			Entry("removed with the invitation revoked", func(ctx context.Context, inv *invitesv1alpha1.Invitation) {
				Expect(k8sClient.Patch(ctx, inv, client.RawPatch(types.MergePatchType, []byte(`{"spec":{"revoked":true}}`)))).To(Succeed())
			}, "revoked"),
		)
	})

	It("matches a private invitation's email case-insensitively", func(ctx SpecContext) {
		_, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.Email = "alice@example.com" })
		a := redeemEventually(ctx, replicas[0], person("alice-mixed", withEmail("Alice@Example.COM", true)), tok)
		Expect(a.status).To(Equal(http.StatusCreated), "%v", a.body)
	})

	It("refuses unknown, rotated and malformed tokens", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 5 })
		erin := person("erin")
		Expect(redeemAt(ctx, replicas[0], erin, strings.Repeat("a", 8)+"."+strings.Repeat("b", 32)).status).To(Equal(http.StatusNotFound))
		Expect(post(ctx, replicas[0], erin, []byte(`{"token":`)).status).To(Equal(http.StatusBadRequest))
		Expect(post(ctx, replicas[0], erin, []byte(`{"token":"x","extra":1}`)).body).To(HaveKeyWithValue("code", "malformed"))

		Expect(k8sClient.Patch(ctx, inv, client.RawPatch(types.MergePatchType,
			[]byte(`{"metadata":{"annotations":{"invites.rolecall.dev/resend":"1"}}}`)))).To(Succeed())
		Eventually(func() string { return tokenOf(ctx, inv) }).ShouldNot(Equal(tok))
		Eventually(func() int { return redeemAt(ctx, replicas[1], erin, tok).status }).Should(Equal(http.StatusNotFound))
		Expect(redeemEventually(ctx, replicas[1], erin, tokenOf(ctx, inv)).status).To(Equal(http.StatusCreated))
	})

	It("records when grants with a grantDuration end, in the answer, on the binding and in status", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.GrantDuration = &metav1.Duration{Duration: 48 * time.Hour} })
		a := redeemEventually(ctx, replicas[0], person("judy"), tok)
		Expect(a.status).To(Equal(http.StatusCreated))
		redeemedAt := latest(ctx, inv).Status.Redemptions[0].RedeemedAt.Time
		want := redeemedAt.Add(48 * time.Hour).UTC().Format(time.RFC3339)
		Expect(a.body).To(HaveKeyWithValue("grantsExpireAt", want))
		Expect(bindingsOf(ctx, inv)[0].Annotations).To(HaveKeyWithValue(invitesv1alpha1.ExpiresAtAnnotation, want))
		Expect(latest(ctx, inv).Status.Redemptions[0].GrantsExpireAt.UTC().Format(time.RFC3339)).To(Equal(want))
	})

	It("with upgrade: Replace, swaps the person's earlier grants in the same scope for the new ones", func(ctx SpecContext) {
		other := newNamespace(ctx)
		first, firstTok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}, {Role: "deployer", Namespace: other}}
		})
		kim := person("kim-" + ns)
		Expect(redeemEventually(ctx, replicas[0], kim, firstTok).status).To(Equal(http.StatusCreated))
		Expect(bindingsOf(ctx, first)).To(HaveLen(2))

		second, secondTok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}}
			s.Upgrade = invitesv1alpha1.UpgradeReplace
		})
		Expect(redeemEventually(ctx, replicas[1], kim, secondTok).status).To(Equal(http.StatusCreated))
		Expect(bindingsOf(ctx, second)).To(HaveLen(1))
		Expect(bindingsOf(ctx, first)).To(ConsistOf(HaveField("Namespace", other)), "the grant outside the new scope stays")
	})

	It("offers the redirect only to an allowed origin", func(ctx SpecContext) {
		_, good := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.RedirectURL = "https://console.example.com/welcome" })
		_, evil := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.RedirectURL = "https://console.example.com.evil.test/welcome"
		})
		Expect(redeemEventually(ctx, replicas[0], person("frank"), good).body).To(HaveKeyWithValue("redirectURL", "https://console.example.com/welcome"))
		Expect(redeemEventually(ctx, replicas[0], person("grace"), evil).body).NotTo(HaveKey("redirectURL"))
	})

	It("refuses with 403 once the inviter's policy is gone, and the invitation turns Denied", func(ctx SpecContext) {
		rgp := &invitesv1alpha1.RoleGrantPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "leads-" + ns},
			Spec: invitesv1alpha1.RoleGrantPolicySpec{
				Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "leads"}},
				GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "deployer"}},
			},
		}
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.Inviter = &invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"leads", "system:authenticated"}}
		})
		Expect(k8sClient.Delete(ctx, rgp)).To(Succeed())
		// Once the deletion reached the first replica's cache (its controller marks the
		// invitation Denied), that replica refuses.
		Eventually(func() invitesv1alpha1.InvitationPhase { return latest(ctx, inv).Status.Phase }).Should(Equal(invitesv1alpha1.PhaseDenied))
		a := redeemAt(ctx, replicas[0], person("heidi"), tok)
		Expect(a.status).To(Equal(http.StatusForbidden))
		Expect(a.body).To(HaveKeyWithValue("code", "policy_denied"))
		Expect(bindingsOf(ctx, inv)).To(BeEmpty())
	})
})

func tokenOf(ctx context.Context, inv *invitesv1alpha1.Invitation) string {
	secret := &corev1.Secret{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Name + "-invitation-token"}, secret)).To(Succeed())
	return string(secret.Data["token"])
}

var _ = Describe("Redeeming under load and faults", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("never spends more than maxUses: 200 people at once, across 2 replicas, for 10 uses", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 10 })
		credentials := make([]string, 200)
		for i := range credentials {
			credentials[i] = person(fmt.Sprintf("crowd-%d-%s", i, ns))
		}
		var created, gone, other atomic.Int32
		var wg sync.WaitGroup
		for i, credential := range credentials {
			wg.Go(func() {
				defer GinkgoRecover()
				switch redeemAt(ctx, replicas[i%2], credential, tok).status {
				case http.StatusCreated:
					created.Add(1)
				case http.StatusGone:
					gone.Add(1)
				default:
					other.Add(1)
				}
			})
		}
		wg.Wait()
		Expect(created.Load()).To(BeEquivalentTo(10))
		Expect(gone.Load()).To(BeEquivalentTo(190))
		Expect(other.Load()).To(BeZero())
		after := latest(ctx, inv)
		Expect(after.Status.Uses).To(BeEquivalentTo(10))
		Eventually(settled(ctx, inv)).WithPolling(250 * time.Millisecond).Should(BeEmpty())
		holders := map[string]int{}
		for _, rb := range bindingsOf(ctx, inv) {
			holders[rb.Subjects[0].Name]++
		}
		Expect(holders).To(HaveLen(10), "exactly 10 people hold bindings")
		for user, n := range holders {
			Expect(n).To(Equal(1), "one binding per user and grant: %s", user)
		}
	})

	It("claims a crowd's uses in groups: fewer writes than people, every use accounted for", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 60 })
		watcher, err := k8sWatcher.Watch(ctx, &invitesv1alpha1.InvitationList{}, client.InNamespace(ns),
			client.MatchingFields{"metadata.name": inv.Name})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(watcher.Stop)

		var created atomic.Int32
		var wg sync.WaitGroup
		for i := range 60 {
			credential := person(fmt.Sprintf("group-%d-%s", i, ns))
			wg.Go(func() {
				defer GinkgoRecover()
				if redeemAt(ctx, replicas[0], credential, tok).status == http.StatusCreated {
					created.Add(1)
				}
			})
		}
		wg.Wait()
		Expect(created.Load()).To(BeEquivalentTo(60))
		Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(60))
		Expect(usesWrites(watcher, 60)).To(BeNumerically("<", 60), "at least one write carried several people")
	})

	It("gives the use back, and leaves no grant behind, when a later grant cannot be bound", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}, {ClusterRole: "view", Namespace: "no-such-namespace"}}
		})
		judy := person("judy")
		Eventually(func() int { return redeemAt(ctx, replicas[0], judy, tok).status }).Should(Equal(http.StatusInternalServerError))
		after := latest(ctx, inv)
		Expect(after.Status.Uses).To(BeZero())
		Expect(after.Status.UsesSummary).To(Equal("0/1"))
		Expect(after.Status.PendingRedemptions).To(BeEmpty())
		Expect(bindingsOf(ctx, inv)).To(BeEmpty(), "the first grant's binding was removed with the use")
	})

	It("gives back a use claimed by a server that died before binding: the books balance, and the person redeems again", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 3 })
		healthy := replicas[0].server
		crashing := &redeem.Server{
			Reader: healthy.Reader, Live: healthy.Live, Sealer: healthy.Sealer, Authenticator: people,
			Authorizer: healthy.Authorizer, Clock: fakeClock, Recorder: healthy.Recorder, Log: healthy.Log,
			AfterClaim: func() error { return fmt.Errorf("the process died here") },
		}
		ivan := person("ivan")
		Eventually(func() int {
			_, refusal := crashing.Redeem(ctx, tok, mustUser(ctx, ivan))
			Expect(refusal).To(HaveOccurred())
			return int(latest(ctx, inv).Status.Uses)
		}).Should(Equal(1))
		stranded := latest(ctx, inv)
		Expect(stranded.Status.PendingRedemptions).To(ConsistOf(HaveField("User", "oidc:ivan")))
		Expect(bindingsOf(ctx, inv)).To(BeEmpty(), "a use is counted that nobody holds, for now")

		By("retrying while the claim is pending: told to wait, nothing bound")
		a := redeemAt(ctx, replicas[1], ivan, tok)
		Expect(a.status).To(Equal(http.StatusConflict), "%v", a.body)
		Expect(a.body).To(HaveKeyWithValue("code", "in_progress"))

		By("after the grace period the controller gives the use back")
		fakeClock.Step(31 * time.Second)
		Expect(k8sClient.Patch(ctx, inv, client.RawPatch(types.MergePatchType, []byte(`{"metadata":{"annotations":{"nudge":"1"}}}`)))).To(Succeed())
		Eventually(func(g Gomega) {
			after := latest(ctx, inv)
			g.Expect(after.Status.PendingRedemptions).To(BeEmpty())
			g.Expect(after.Status.Uses).To(BeZero())
			g.Expect(after.Status.Redemptions).To(BeEmpty())
		}).Should(Succeed())
		Expect(bindingsOf(ctx, inv)).To(BeEmpty())

		By("Ivan retries, as he would after an error: a new claim, checked like any other")
		Expect(redeemAt(ctx, replicas[1], ivan, tok).status).To(Equal(http.StatusCreated))
		Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
		Expect(bindingsOf(ctx, inv)).To(ConsistOf(HaveField("Subjects", ConsistOf(HaveField("Name", "oidc:ivan")))))
	})
})

// settled reads the invitation's pending redemptions as time passes: the controller clears
// a finished redemption's entry with its next status write, or a few seconds after it.
func settled(ctx context.Context, inv *invitesv1alpha1.Invitation) func() []invitesv1alpha1.PendingRedemption {
	return func() []invitesv1alpha1.PendingRedemption {
		fakeClock.Step(time.Second)
		return latest(ctx, inv).Status.PendingRedemptions
	}
}

func mustUser(ctx context.Context, credential string) identity.User {
	u, err := people.Authenticate(ctx, credential)
	Expect(err).NotTo(HaveOccurred())
	return u
}

// usesWrites counts the writes that raised status.uses, until uses reaches want.
func usesWrites(w watch.Interface, want int32) int {
	GinkgoHelper()
	writes, last := 0, int32(0)
	Eventually(func() int32 {
		for {
			select {
			case event := <-w.ResultChan():
				if inv, ok := event.Object.(*invitesv1alpha1.Invitation); ok && inv.Status.Uses > last {
					writes, last = writes+1, inv.Status.Uses
				}
			default:
				return last
			}
		}
	}).Should(Equal(want))
	return writes
}

// landingStatus is the status of the token's landing page on a replica.
func landingStatus(ctx context.Context, r *replica, tok string) int {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.http.URL+"/i/"+url.PathEscape(tok), nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := http.DefaultClient.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Body.Close()).To(Succeed())
	return resp.StatusCode
}
