package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"syscall"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

var _ = Describe("Two manager replicas with leader election", Ordered, func() {
	var (
		c                *cluster
		leader, follower *managerProcess
	)

	BeforeAll(func(ctx SpecContext) {
		c = startCluster(ctx)
		kubeconfig := c.writeKubeconfig("")
		// The API server calls one webhook address, the follower's: killing the leader
		// then leaves admission working, as a Service in front of both replicas would.
		// The leader's webhook server listens where nobody calls it. Starting it alone
		// first decides which replica leads.
		leader = c.startManager(kubeconfig, replicaFlags(fmt.Sprintf("--webhook-port=%d", freePort()))...)
		leader.waitReady(ctx)
		Eventually(func() bool { return leader.leads(ctx) }).Should(BeTrue())
		follower = c.startManager(kubeconfig, replicaFlags()...)
		follower.waitReady(ctx)
	})

	It("elects one leader, while the other replica waits for the Lease", func(ctx SpecContext) {
		Expect(c.leaseHolder(ctx)).NotTo(BeEmpty())
		Expect(leader.leads(ctx)).To(BeTrue())
		Expect(follower.leads(ctx)).To(BeFalse())
		Eventually(follower.output).Should(ContainSubstring("Attempting to acquire leader lease"))
		Expect(follower.output()).NotTo(ContainSubstring("Successfully acquired lease"))
		Expect(follower.output()).NotTo(ContainSubstring(`"msg":"Starting workers"`), "the follower's controllers wait")
	})

	Context("while both run", Ordered, func() {
		var (
			inv *invitesv1alpha1.Invitation
			tok string
		)

		It("issues an invitation once, from the leader alone", func(ctx SpecContext) {
			ns := c.namespaceWithRole(ctx, "replicas")
			inv, tok = c.issue(ctx, ns, 2)
			Eventually(func() ([]eventsv1.Event, error) { return c.eventsFor(ctx, inv, "Issued") }).Should(HaveLen(1))
			issued, err := c.eventsFor(ctx, inv, "Issued")
			Expect(err).NotTo(HaveOccurred())
			Expect(issued[0].Series).To(BeNil(), "not issued again by the same replica")
			Expect(issued[0].Note).To(ContainSubstring(inv.Status.TokenID))
			Expect(c.tokenSecret(ctx, inv).Annotations).To(HaveKeyWithValue(invitesv1alpha1.TokenIDAnnotation, inv.Status.TokenID))

			// The leader's log shows its reconciles, so their absence from the follower's means something.
			Eventually(func() []string { return reconcileLines(leader, ns) }).ShouldNot(BeEmpty())
			Expect(reconcileLines(follower, ns)).To(BeEmpty())
		})

		It("serves redemptions on both replicas, for different people on one invitation", func(ctx SpecContext) {
			people := c.redeemers(ctx, inv.Namespace, 2)
			status, body := redeemAt(ctx, leader.redeemURL, people[0].credential, tok)
			Expect(status).To(Equal(http.StatusCreated), "%v", body)
			// The follower's own cache may see the token a moment later than the leader's.
			Eventually(func() int { s, _ := redeemAt(ctx, follower.redeemURL, people[1].credential, tok); return s }).
				WithPolling(500 * time.Millisecond).Should(Equal(http.StatusCreated))

			Eventually(func() int32 { return c.latest(ctx, inv).Status.Uses }).Should(BeEquivalentTo(2))
			Expect(c.holders(ctx, inv)).To(SatisfyAll(HaveKey(people[0].username), HaveKey(people[1].username)))
			Expect(follower.output()).To(ContainSubstring(people[1].username), "the follower's audit line names whom it served")
		})
	})

	It("hands over when the leader is SIGKILLed: the follower takes the Lease once it expires, and issues", func(ctx SpecContext) {
		before, err := c.leaseHolder(ctx)
		Expect(err).NotTo(HaveOccurred())
		leader.session.Signal(syscall.SIGKILL)
		Eventually(leader.session).Should(gexec.Exit())

		// Created while nobody leads: the Lease still names the dead leader until it expires.
		ns := c.namespaceWithRole(ctx, "failover")
		inv := c.invite(ctx, ns, 1)
		// A killed leader hands nothing over: the follower waits until the Lease expires.
		Eventually(func() bool { return follower.leads(ctx) }).WithTimeout(2 * time.Minute).Should(BeTrue())
		Expect(c.leaseHolder(ctx)).To(SatisfyAll(Not(BeEmpty()), Not(Equal(before))))
		Eventually(func(g Gomega) {
			latest := c.latest(ctx, inv)
			g.Expect(latest.Status.TokenID).NotTo(BeEmpty())
			g.Expect(string(c.tokenSecret(ctx, latest).Data[invitesv1alpha1.TokenSecretKey])).To(HavePrefix(latest.Status.TokenID + "."))
		}).WithTimeout(2 * time.Minute).Should(Succeed())
		Eventually(func() []string { return reconcileLines(follower, ns) }).ShouldNot(BeEmpty(), "the former follower reconciles now")
	})
})

// replicaFlags run a manager as one of several replicas. Its log includes
// controller-runtime's per-reconcile lines (V(5)), to tell which replica reconciled what.
func replicaFlags(extra ...string) []string {
	return append([]string{"--leader-elect", "--zap-log-level=5"}, extra...)
}

// reconcileLines are the manager's log lines about reconciling objects in namespace ns.
func reconcileLines(m *managerProcess, ns string) []string {
	var lines []string
	for _, line := range strings.Split(m.output(), "\n") {
		if strings.Contains(line, `"msg":"Reconcil`) && strings.Contains(line, `"namespace":"`+ns+`"`) {
			lines = append(lines, line)
		}
	}
	return lines
}

// invite creates an invitation through the admission webhook, without waiting for it.
func (c *cluster) invite(ctx context.Context, ns string, maxUses int32) *invitesv1alpha1.Invitation {
	GinkgoHelper()
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}, MaxUses: maxUses},
	}
	Expect(c.admin.Create(ctx, inv)).To(Succeed())
	return inv
}

// tokenSecret is the invitation's token Secret, or an empty one while it is not there.
func (c *cluster) tokenSecret(ctx context.Context, inv *invitesv1alpha1.Invitation) *corev1.Secret {
	secret := &corev1.Secret{}
	if inv.Status.TokenSecretRef != nil {
		_ = c.admin.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: inv.Status.TokenSecretRef.Name}, secret)
	}
	return secret
}

// eventsFor lists the Events with that reason about the invitation.
func (c *cluster) eventsFor(ctx context.Context, inv *invitesv1alpha1.Invitation, reason string) ([]eventsv1.Event, error) {
	list, err := c.clientset.EventsV1().Events(inv.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var out []eventsv1.Event
	for _, e := range list.Items {
		if e.Regarding.UID == inv.UID && e.Reason == reason {
			out = append(out, e)
		}
	}
	return out, nil
}
