package redeem_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/redeem"
)

type pageAnswer struct {
	status int
	header http.Header
	body   string
}

// open fetches a page the way a browser (or a mail scanner) following a link would.
func open(ctx context.Context, r *replica, path string) pageAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.http.URL+path, nil)
	Expect(err).NotTo(HaveOccurred())
	resp, err := noRedirects.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return pageAnswer{status: resp.StatusCode, header: resp.Header, body: string(body)}
}

var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// openEventually waits until the replica's cache knows the token.
func openEventually(ctx context.Context, r *replica, tok string) pageAnswer {
	var p pageAnswer
	Eventually(func() int { p = open(ctx, r, "/i/"+tok); return p.status }).ShouldNot(Equal(http.StatusNotFound))
	return p
}

var _ = Describe("The landing page", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("says what accepting takes away when the invitation replaces earlier grants, and only then", func(ctx SpecContext) {
		_, replacing := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.Upgrade = invitesv1alpha1.UpgradeReplace
			s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}, {ClusterRole: "view", Namespace: "shared"}}
		})
		page := openEventually(ctx, replicas[0], replacing)
		Expect(page.body).To(ContainSubstring("Accepting also takes roles away"))
		Expect(page.body).To(ContainSubstring("namespace " + ns))
		Expect(page.body).To(ContainSubstring("namespace shared"))

		_, adding := issue(ctx, ns)
		Expect(openEventually(ctx, replicas[0], adding).body).NotTo(ContainSubstring("takes roles away"))
	})

	It("shows the grants, namespaces, expiry, places left and the inviter", func(ctx SpecContext) {
		_, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) {
			s.MaxUses = 5
			s.Grants = []invitesv1alpha1.Grant{{Role: "deployer"}, {ClusterRole: "view", Namespace: "shared"}, {ClusterRole: "cluster-reader", ClusterWide: true}}
		})
		page := openEventually(ctx, replicas[0], tok)
		Expect(page.status).To(Equal(http.StatusOK))
		Expect(page.header.Get("Content-Type")).To(HavePrefix("text/html"))
		Expect(page.body).To(ContainSubstring("Role deployer</strong> in namespace " + ns))
		Expect(page.body).To(ContainSubstring("ClusterRole view</strong> in namespace shared"))
		Expect(page.body).To(ContainSubstring("ClusterRole cluster-reader</strong> across the whole cluster"))
		Expect(page.body).To(MatchRegexp(`id="uses-left">5<`))
		Expect(page.body).To(ContainSubstring(`id="expires"`))
		Expect(page.body).To(ContainSubstring("<strong>platform-admin</strong> invites you"))
	})

	It("hides the inviter when the invitation asks it to", func(ctx SpecContext) {
		_, tok := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.HideInviter = true })
		page := openEventually(ctx, replicas[0], tok)
		Expect(page.status).To(Equal(http.StatusOK))
		Expect(page.body).NotTo(ContainSubstring("platform-admin"))
	})

	It("changes nothing, however often it is opened (mail scanners follow links)", func(ctx SpecContext) {
		inv, tok := issue(ctx, ns)
		openEventually(ctx, replicas[0], tok)
		// Let the controller finish issuing first: only then is every write one of ours.
		var before *invitesv1alpha1.Invitation
		Eventually(func(g Gomega) {
			before = latest(ctx, inv)
			g.Consistently(func() string { return latest(ctx, inv).ResourceVersion }).
				WithTimeout(time.Second).Should(Equal(before.ResourceVersion))
		}).Should(Succeed())
		for range 20 {
			Expect(open(ctx, replicas[1], "/i/"+tok).status).To(Equal(http.StatusOK))
			Expect(open(ctx, replicas[0], "/i/"+tok).status).To(Equal(http.StatusOK))
		}
		Consistently(func(g Gomega) {
			after := latest(ctx, inv)
			g.Expect(after.ResourceVersion).To(Equal(before.ResourceVersion))
			g.Expect(after.Status.Uses).To(BeZero())
			g.Expect(bindingsOf(ctx, inv)).To(BeEmpty())
		}).WithTimeout(2 * time.Second).Should(Succeed())
	})

	It("never echoes the token beyond its own form actions, and forbids framing, sniffing, caching and referrers", func(ctx SpecContext) {
		_, tok := issue(ctx, ns)
		page := openEventually(ctx, replicas[0], tok)
		Expect(page.header.Get("Content-Security-Policy")).To(And(ContainSubstring("frame-ancestors 'none'"), ContainSubstring("default-src 'none'")))
		Expect(page.header.Get("Referrer-Policy")).To(Equal("no-referrer"))
		Expect(page.header.Get("Cache-Control")).To(Equal("no-store"))
		Expect(page.header.Get("X-Content-Type-Options")).To(Equal("nosniff"))
		Expect(page.body).To(ContainSubstring(`<meta name="referrer" content="no-referrer">`))
		Expect(page.body).NotTo(ContainSubstring("<script"))
	})

	It("explains without sign-in configured how to redeem with kubectl, and refuses to start one", func(ctx SpecContext) {
		_, tok := issue(ctx, ns)
		page := openEventually(ctx, replicas[0], tok)
		Expect(page.body).To(ContainSubstring("kubectl invite redeem"))
		Expect(page.body).NotTo(ContainSubstring(`id="accept"`))
		resp, err := http.PostForm(replicas[0].http.URL+"/i/"+tok+"/accept", url.Values{"csrf": {"x"}})
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.Body.Close()).To(Succeed())
		Expect(resp.StatusCode).To(Equal(http.StatusNotImplemented))
	})

	DescribeTable("tells a person in plain words why an invitation cannot be used",
		func(ctx SpecContext, prepare func(context.Context, *invitesv1alpha1.Invitation), status int, code, heading string) {
			inv, tok := issue(ctx, ns)
			openEventually(ctx, replicas[0], tok)
			prepare(ctx, inv)
			Eventually(func(g Gomega) {
				page := open(ctx, replicas[0], "/i/"+tok)
				g.Expect(page.status).To(Equal(status))
				g.Expect(page.body).To(ContainSubstring(`data-code="` + code + `"`))
				g.Expect(page.body).To(ContainSubstring(heading))
			}).Should(Succeed())
		},
		Entry("revoked", func(ctx context.Context, inv *invitesv1alpha1.Invitation) {
			patch := client.MergeFrom(inv.DeepCopy())
			inv.Spec.Revoked = true
			Expect(k8sClient.Patch(ctx, inv, patch)).To(Succeed())
		}, http.StatusGone, "revoked", "This invitation was withdrawn"),
		Entry("exhausted", func(ctx context.Context, inv *invitesv1alpha1.Invitation) {
			Expect(redeemAt(ctx, replicas[0], person("first-comer"), secretOf(ctx, inv)).status).To(Equal(http.StatusCreated))
		}, http.StatusGone, "exhausted", "This invitation has been used up"),
		Entry("expired", func(context.Context, *invitesv1alpha1.Invitation) {
			fakeClock.Step(2 * time.Hour)
		}, http.StatusGone, "expired", "This invitation has expired"),
	)

	It("answers a wrong token with a 404 page, and locks its token ID like the API does", func(ctx SpecContext) {
		r := limited(redeem.Limits{FailuresPerClient: unlimited.FailuresPerClient, ClientBurst: 1, LockAfter: 3, LockWindow: unlimited.LockWindow, LockFor: time.Minute})
		inv, tok := issue(ctx, ns)
		wrong := inv.Status.TokenID + "." + strings.Repeat("a", 32)
		Expect(wrong).NotTo(Equal(tok))
		for range 3 {
			page := open(ctx, r, "/i/"+wrong)
			Expect(page.status).To(Equal(http.StatusNotFound))
			Expect(page.body).To(ContainSubstring("This invitation link does not work"))
		}
		locked := open(ctx, r, "/i/"+tok)
		Expect(locked.status).To(Equal(http.StatusTooManyRequests))
		Expect(locked.header.Get("Retry-After")).NotTo(BeEmpty())
	})

	It("takes a typed code from the home page to its landing page", func(ctx SpecContext) {
		home := open(ctx, replicas[0], "/")
		Expect(home.status).To(Equal(http.StatusOK))
		Expect(home.body).To(ContainSubstring(`name="token"`))
		typed := open(ctx, replicas[0], "/i?token="+url.QueryEscape("abcd efgh"))
		Expect(typed.status).To(Equal(http.StatusSeeOther))
		Expect(typed.header.Get("Location")).To(Equal("/i/abcd%20efgh"))
	})
})

// secretOf reads an invitation's current token, as its inviter could.
func secretOf(ctx context.Context, inv *invitesv1alpha1.Invitation) string {
	return tokenOf(ctx, inv)
}
