package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// redeemer is a person: a service account whose token the API server accepts.
type redeemer struct {
	username, credential string
}

var _ = Describe("The manager binary under faults", Ordered, func() {
	var c *cluster
	BeforeAll(func(ctx SpecContext) { c = startCluster(ctx) })

	It("loses nothing when SIGKILLed in the middle of a redemption flood", func(ctx SpecContext) {
		m := c.startManager(c.writeKubeconfig(""), "--leader-elect")
		m.waitReady(ctx)
		ns := c.namespaceWithRole(ctx, "flood")
		inv, tok := c.issue(ctx, ns, 20)
		people := c.redeemers(ctx, ns, 60)

		By("60 people redeeming 20 uses at once; the manager is killed as the first succeeds")
		statuses := make([]int, len(people))
		var kill sync.Once
		var wg sync.WaitGroup
		for i, p := range people {
			wg.Go(func() {
				statuses[i], _ = redeemAt(ctx, m.redeemURL, p.credential, tok)
				if statuses[i] == http.StatusCreated {
					kill.Do(func() { m.session.Signal(syscall.SIGKILL) })
				}
			})
		}
		wg.Wait()
		Eventually(m.session).Should(gexec.Exit())
		answered := 0
		for _, s := range statuses {
			if s != 0 {
				answered++
			}
		}
		GinkgoWriter.Printf("answered before the kill: %d of %d\n", answered, len(people))

		By("restarting it, and letting everyone without an answer try again")
		m.start()
		m.waitReady(ctx)
		for i, p := range people {
			// A claim the kill interrupted is answered 409 until the controller gives its
			// use back; then the person redeems like anyone else.
			Eventually(func() int {
				if unanswered(statuses[i]) {
					statuses[i], _ = redeemAt(ctx, m.redeemURL, p.credential, tok)
				}
				return statuses[i]
			}).WithTimeout(2 * time.Minute).WithPolling(time.Second).ShouldNot(Satisfy(unanswered))
		}
		Eventually(func() []invitesv1alpha1.PendingRedemption {
			return c.latest(ctx, inv).Status.PendingRedemptions
		}).WithTimeout(2*time.Minute).Should(BeEmpty(), "interrupted claims are settled")

		By("checking the books")
		after := c.latest(ctx, inv)
		holders := c.holders(ctx, inv)
		Expect(after.Status.Uses).To(BeEquivalentTo(20), "every use was taken, none twice")
		Expect(holders).To(HaveLen(20), "uses == people holding bindings")
		for i, p := range people {
			switch statuses[i] {
			case http.StatusCreated, http.StatusOK:
				Expect(holders).To(HaveKey(p.username), "a redemption that answered %d holds its grant", statuses[i])
			default:
				Expect(statuses[i]).To(Equal(http.StatusGone), "%s", p.username)
				Expect(holders).NotTo(HaveKey(p.username))
			}
		}
		for user := range holders {
			Expect(after.Status.Redemptions).To(ContainElement(HaveField("User", user)), "no binding without a counted use")
		}
	})

	It("answers 503 while the API server is unreachable, and recovers when it is back", func(ctx SpecContext) {
		proxy := newCutoff(c.apiServerAddr())
		m := c.startManager(c.writeKubeconfig(proxy.addr))
		m.waitReady(ctx)
		ns := c.namespaceWithRole(ctx, "outage")
		inv, tok := c.issue(ctx, ns, 1)
		person := c.redeemers(ctx, ns, 1)[0]
		Eventually(func() int { s, _, _ := get(ctx, m.redeemURL+"/i/"+tok); return s }).Should(Equal(http.StatusOK), "the token is in the cache")

		proxy.cut()
		status, body := redeemAt(ctx, m.redeemURL, person.credential, tok)
		Expect(status).To(Equal(http.StatusServiceUnavailable), "%v", body)
		Expect(body).To(HaveKeyWithValue("code", "unavailable"))
		Expect(c.latest(ctx, inv).Status.Uses).To(BeZero())

		proxy.restore()
		Eventually(func() int { s, _ := redeemAt(ctx, m.redeemURL, person.credential, tok); return s }).
			Should(BeElementOf(http.StatusCreated, http.StatusOK))
		Expect(c.latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
		Expect(c.holders(ctx, inv)).To(HaveKey(person.username))
	})

	It("answers only 503 for what it cannot finish when the API server goes away mid-flood, and the books balance after", func(ctx SpecContext) {
		proxy := newCutoff(c.apiServerAddr())
		m := c.startManager(c.writeKubeconfig(proxy.addr), "--leader-elect")
		m.waitReady(ctx)
		ns := c.namespaceWithRole(ctx, "outage-flood")
		inv, tok := c.issue(ctx, ns, 15)
		people := c.redeemers(ctx, ns, 40)
		Eventually(func() int { s, _, _ := get(ctx, m.redeemURL+"/i/"+tok); return s }).Should(Equal(http.StatusOK), "the token is in the cache")

		By("40 people redeeming 15 uses at once; the API server becomes unreachable as the first succeeds")
		statuses := make([]int, len(people))
		var cut sync.Once
		var wg sync.WaitGroup
		for i, p := range people {
			wg.Go(func() {
				statuses[i], _ = redeemAt(ctx, m.redeemURL, p.credential, tok)
				if statuses[i] == http.StatusCreated {
					cut.Do(proxy.cut)
				}
			})
		}
		wg.Wait()
		for i, s := range statuses {
			Expect(s).To(BeElementOf(http.StatusCreated, http.StatusOK, http.StatusGone, http.StatusServiceUnavailable),
				"%s got %d: every request is answered, and never with a 500", people[i].username, s)
		}
		Expect(statuses).To(ContainElement(http.StatusServiceUnavailable), "the outage was felt")

		By("restoring the API server, and letting everyone who got 503 try again")
		proxy.restore()
		for i, p := range people {
			if statuses[i] == http.StatusServiceUnavailable {
				Eventually(func() int { statuses[i], _ = redeemAt(ctx, m.redeemURL, p.credential, tok); return statuses[i] }).
					WithTimeout(2 * time.Minute).WithPolling(time.Second).ShouldNot(Satisfy(unanswered))
			}
		}
		Eventually(func() []invitesv1alpha1.PendingRedemption {
			return c.latest(ctx, inv).Status.PendingRedemptions
		}).WithTimeout(2*time.Minute).Should(BeEmpty(), "interrupted claims are settled")

		By("checking the books")
		after := c.latest(ctx, inv)
		holders := c.holders(ctx, inv)
		Expect(after.Status.Uses).To(BeEquivalentTo(15))
		Expect(holders).To(HaveLen(15), "uses == people holding bindings")
		for i, p := range people {
			if statuses[i] == http.StatusGone {
				Expect(holders).NotTo(HaveKey(p.username))
				continue
			}
			Expect(holders).To(HaveKey(p.username), "a redemption that answered %d holds its grant", statuses[i])
		}
	})
})

// redeemAt posts a redemption; status 0 means no answer (the server was gone).
func redeemAt(ctx context.Context, redeemURL, credential, tok string) (int, map[string]any) {
	return redeemForwarded(ctx, redeemURL, "", credential, tok)
}

// redeemForwarded posts a redemption, as the client forwardedFor names when it is set (the
// manager trusts the test's loopback proxy); status 0 means no answer.
func redeemForwarded(ctx context.Context, redeemURL, forwardedFor, credential, tok string) (int, map[string]any) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, redeemURL+"/api/v1/redemptions", strings.NewReader(fmt.Sprintf(`{"token":%q}`, tok)))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	if forwardedFor != "" {
		req.Header.Set("X-Forwarded-For", forwardedFor)
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := (&http.Client{Timeout: time.Minute}).Do(req)
	if err != nil {
		return 0, nil
	}
	defer func() { _ = resp.Body.Close() }()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func (c *cluster) namespaceWithRole(ctx context.Context, prefix string) string {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	Expect(c.admin.Create(ctx, ns)).To(Succeed())
	Expect(c.admin.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	})).To(Succeed())
	return ns.Name
}

// issue creates an invitation through the admission webhook and returns its token.
func (c *cluster) issue(ctx context.Context, ns string, maxUses int32) (*invitesv1alpha1.Invitation, string) {
	GinkgoHelper()
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}, MaxUses: maxUses},
	}
	Expect(c.admin.Create(ctx, inv)).To(Succeed())
	secret := &corev1.Secret{}
	Eventually(func(g Gomega) {
		g.Expect(c.admin.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
		g.Expect(inv.Status.Phase).To(Equal(invitesv1alpha1.PhaseActive))
		g.Expect(c.admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: inv.Status.TokenSecretRef.Name}, secret)).To(Succeed())
	}).Should(Succeed())
	return inv, string(secret.Data[invitesv1alpha1.TokenSecretKey])
}

// redeemers makes n service accounts and a token for each.
func (c *cluster) redeemers(ctx context.Context, ns string, n int) []redeemer {
	GinkgoHelper()
	people := make([]redeemer, n)
	for i := range people {
		name := fmt.Sprintf("person-%d", i)
		_, err := c.clientset.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		tr, err := c.clientset.CoreV1().ServiceAccounts(ns).CreateToken(ctx, name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
		Expect(err).NotTo(HaveOccurred())
		people[i] = redeemer{username: "system:serviceaccount:" + ns + ":" + name, credential: tr.Status.Token}
	}
	return people
}

func (c *cluster) latest(ctx context.Context, inv *invitesv1alpha1.Invitation) *invitesv1alpha1.Invitation {
	GinkgoHelper()
	out := &invitesv1alpha1.Invitation{}
	Expect(c.admin.Get(ctx, client.ObjectKeyFromObject(inv), out)).To(Succeed())
	return out
}

// holders are the users holding a binding made for the invitation, with how many each.
func (c *cluster) holders(ctx context.Context, inv *invitesv1alpha1.Invitation) map[string]int {
	GinkgoHelper()
	var list rbacv1.RoleBindingList
	Expect(c.admin.List(ctx, &list, client.MatchingLabels{invitesv1alpha1.InvitationUIDLabel: string(inv.UID)})).To(Succeed())
	held := map[string]int{}
	for _, rb := range list.Items {
		held[rb.Annotations[invitesv1alpha1.UsernameAnnotation]]++
	}
	for user, n := range held {
		Expect(n).To(Equal(1), "one binding per user and grant: %s", user)
	}
	return held
}

// unanswered: no final answer yet. No answer at all, the server unavailable, a claim of the
// person's still pending (409 in_progress), or too many retries from the one address every
// test client shares (429, whose Retry-After a client waits out) all mean "try again".
func unanswered(status int) bool {
	return status == 0 || status == http.StatusConflict || status == http.StatusTooManyRequests || status >= 500
}
