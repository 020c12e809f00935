package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/testing/mailpit"
)

var _ = Describe("The manager binary delivering invitations by mail", Ordered, func() {
	const to = "alice@example.test"
	var (
		c    *cluster
		m    *managerProcess
		mail *mailpit.Server
		inv  *invitesv1alpha1.Invitation
		msg  mailpit.Message
		link string
	)

	BeforeAll(func(ctx SpecContext) {
		c = startCluster(ctx)
		mail = startMailpit(ctx)
		m = c.newManager(c.writeKubeconfig(""),
			"--smtp-host="+mail.SMTPHost, fmt.Sprintf("--smtp-port=%d", mail.SMTPPort), "--smtp-tls=none",
			"--smtp-from=Platform team <invites@example.test>",
			// The landing page offers sign-in when an issuer is configured; it is first
			// contacted when someone accepts, which no spec here does.
			"--signin-issuer-url=https://issuer.example.test", "--signin-client-id=rolecall")
		// Links point at this manager's own redemption server, so that a spec can follow them.
		m.args = append(m.args, "--public-url="+m.redeemURL)
		m.start()
		m.waitReady(ctx)
	})

	It("sends the link to spec.email once the token is issued", func(ctx SpecContext) {
		ns := c.namespaceWithRole(ctx, "mail")
		inv = &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: ns},
			Spec: invitesv1alpha1.InvitationSpec{
				Email: to, Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}},
				Delivery: &invitesv1alpha1.Delivery{Email: true},
			},
		}
		Expect(c.admin.Create(ctx, inv)).To(Succeed())
		Expect(inv.Spec.Inviter.Username).To(Equal("e2e-admin"), "the webhook stamped the inviter")

		msg = onlyMessageTo(ctx, mail, to)
		Expect(msg.From.Address).To(Equal("invites@example.test"))
		Expect(msg.Subject).To(ContainSubstring(ns))
		Expect(msg.Text).To(ContainSubstring("e2e-admin invited you"))
	})

	It("carries the token Secret's link, in the text and in the HTML", func(ctx SpecContext) {
		Eventually(func() string {
			return string(c.tokenSecret(ctx, c.latest(ctx, inv)).Data[invitesv1alpha1.URLSecretKey])
		}).ShouldNot(BeEmpty())
		link = string(c.tokenSecret(ctx, c.latest(ctx, inv)).Data[invitesv1alpha1.URLSecretKey])
		Expect(link).To(HavePrefix(m.redeemURL + "/i/" + c.latest(ctx, inv).Status.TokenID + "."))
		Expect(msg.Text).To(ContainSubstring(link))
		Expect(msg.HTML).To(ContainSubstring(`href="` + link + `"`))
	})

	It("opens the landing page from the link, with the grant and a sign-in button", func(ctx SpecContext) {
		code, body, err := get(ctx, link)
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(http.StatusOK), body)
		Expect(body).To(ContainSubstring("<strong>Role pod-reader</strong> in namespace " + inv.Namespace))
		Expect(body).To(ContainSubstring(to))
		Expect(body).To(ContainSubstring("Sign in and accept"))
		Expect(c.latest(ctx, inv).Status.Uses).To(BeZero(), "opening the page uses nothing")
	})

	It("records the delivery in status", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			latest := c.latest(ctx, inv)
			g.Expect(meta.IsStatusConditionTrue(latest.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)).To(BeTrue())
			g.Expect(latest.Status.DeliveredAt).NotTo(BeNil())
		}).Should(Succeed())
	})

	It("sends no second mail when the invitation is applied again", func(ctx SpecContext) {
		before := reconciles(ctx, m, "delivery")
		latest := c.latest(ctx, inv)
		patch := client.MergeFrom(latest.DeepCopy())
		latest.Labels = map[string]string{"team": "platform"}
		Expect(c.admin.Patch(ctx, latest, patch)).To(Succeed())

		// The delivery controller looks at the changed invitation, and decides to send nothing.
		Eventually(func() float64 { return reconciles(ctx, m, "delivery") }).Should(BeNumerically(">", before))
		Consistently(func() ([]mailpit.Summary, error) { return messagesTo(ctx, mail, to) }).
			WithTimeout(2 * time.Second).Should(HaveLen(1))
	})
})

func startMailpit(ctx context.Context) *mailpit.Server {
	GinkgoHelper()
	// Not tied to the node's context: the server outlives the BeforeAll that starts it.
	server, err := mailpit.Start(context.WithoutCancel(ctx), mailpit.Options{Dir: GinkgoT().TempDir()})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(server.Stop)
	return server
}

// messagesTo lists the messages mailpit received for an address.
func messagesTo(ctx context.Context, server *mailpit.Server, address string) ([]mailpit.Summary, error) {
	all, err := server.Messages(ctx)
	var out []mailpit.Summary
	for _, s := range all {
		for _, rcpt := range s.To {
			if strings.EqualFold(rcpt.Address, address) {
				out = append(out, s)
			}
		}
	}
	return out, err
}

// onlyMessageTo waits for exactly one message to the address and reads it.
func onlyMessageTo(ctx context.Context, server *mailpit.Server, address string) mailpit.Message {
	GinkgoHelper()
	var list []mailpit.Summary
	Eventually(func(g Gomega) {
		var err error
		list, err = messagesTo(ctx, server, address)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list).To(HaveLen(1))
	}).Should(Succeed())
	msg, err := server.Message(ctx, list[0].ID)
	Expect(err).NotTo(HaveOccurred())
	return msg
}

// reconciles is how many reconciles a controller of the manager has finished, whatever
// their result, by its metrics.
func reconciles(ctx context.Context, m *managerProcess, controller string) float64 {
	GinkgoHelper()
	_, body, err := get(ctx, m.metricsURL)
	Expect(err).NotTo(HaveOccurred())
	var total float64
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, `controller_runtime_reconcile_total{controller="`+controller+`",`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		Expect(err).NotTo(HaveOccurred())
		total += v
	}
	return total
}
