package browser

import (
	"context"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/redeem"
)

// visitor is a scripted browser: a cookie jar, the provider's CA, and no automatic visit
// to rolecall's callback, so a spec can hold the callback URL and choose what to do with it.
type visitor struct{ client *http.Client }

func newVisitor() *visitor {
	jar, err := cookiejar.New(nil)
	Expect(err).NotTo(HaveOccurred())
	c := idp.HTTPClient()
	c.Jar = jar
	c.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), redeemURL+redeem.CallbackPath) {
			return http.ErrUseLastResponse
		}
		return nil
	}
	return &visitor{client: c}
}

type visit struct {
	status   int
	location string
	body     string
}

func (v *visitor) do(ctx context.Context, method, target string, form url.Values, header http.Header) visit {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, method, target, strings.NewReader(form.Encode()))
	Expect(err).NotTo(HaveOccurred())
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := v.client.Do(req)
	Expect(err).NotTo(HaveOccurred())
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	Expect(err).NotTo(HaveOccurred())
	return visit{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body)}
}

var (
	csrfField  = regexp.MustCompile(`name="csrf" value="([^"]+)"`)
	formAction = regexp.MustCompile(`<form method="post" action="([^"]+)"`)
	requestID  = regexp.MustCompile(`name="id" value="([^"]+)"`)
)

func field(re *regexp.Regexp, body string) string {
	GinkgoHelper()
	m := re.FindStringSubmatch(body)
	Expect(m).To(HaveLen(2), "no %s in %s", re, body)
	return html.UnescapeString(m[1])
}

// acceptUntilCallback opens the link, accepts, signs in at the provider, and returns the
// callback URL the provider sends the browser to, without visiting it.
func (v *visitor) acceptUntilCallback(ctx context.Context, link, username, password string) string {
	GinkgoHelper()
	landing := v.do(ctx, http.MethodGet, link, nil, nil)
	Expect(landing.status).To(Equal(http.StatusOK))
	login := v.do(ctx, http.MethodPost, link+"/accept", url.Values{"csrf": {field(csrfField, landing.body)}}, nil)
	Expect(login.status).To(Equal(http.StatusOK), login.body)
	action, err := url.Parse(idp.Issuer)
	Expect(err).NotTo(HaveOccurred())
	action, err = action.Parse(field(formAction, login.body))
	Expect(err).NotTo(HaveOccurred())
	back := v.do(ctx, http.MethodPost, action.String(), url.Values{"id": {field(requestID, login.body)}, "username": {username}, "password": {password}}, nil)
	Expect(back.location).To(HavePrefix(redeemURL + redeem.CallbackPath))
	return back.location
}

var _ = Describe("The sign-in", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("refuses a form without the page's CSRF token", func(ctx SpecContext) {
		_, link := issue(ctx, ns, nil)
		v := newVisitor()
		v.do(ctx, http.MethodGet, link, nil, nil)
		answer := v.do(ctx, http.MethodPost, link+"/accept", url.Values{"csrf": {"forged"}}, nil)
		Expect(answer.status).To(Equal(http.StatusForbidden))
		Expect(answer.body).To(ContainSubstring(`data-code="csrf"`))
	})

	It("refuses a form posted from another site, even with a token", func(ctx SpecContext) {
		_, link := issue(ctx, ns, nil)
		v := newVisitor()
		landing := v.do(ctx, http.MethodGet, link, nil, nil)
		answer := v.do(ctx, http.MethodPost, link+"/accept", url.Values{"csrf": {field(csrfField, landing.body)}},
			http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
		Expect(answer.status).To(Equal(http.StatusForbidden))
	})

	It("sends people to the provider with PKCE, state and nonce", func(ctx SpecContext) {
		_, link := issue(ctx, ns, nil)
		v := newVisitor()
		v.client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
		landing := v.do(ctx, http.MethodGet, link, nil, nil)
		start := v.do(ctx, http.MethodPost, link+"/accept", url.Values{"csrf": {field(csrfField, landing.body)}}, nil)
		Expect(start.status).To(Equal(http.StatusSeeOther))
		authorize, err := url.Parse(start.location)
		Expect(err).NotTo(HaveOccurred())
		Expect(authorize.String()).To(HavePrefix(idp.Issuer))
		q := authorize.Query()
		Expect(q.Get("code_challenge_method")).To(Equal("S256"))
		Expect(q.Get("code_challenge")).NotTo(BeEmpty())
		Expect(q.Get("state")).To(HaveLen(43))
		Expect(q.Get("nonce")).To(HaveLen(43))
		Expect(q.Get("redirect_uri")).To(Equal(redeemURL + redeem.CallbackPath))
		Expect(start.location).NotTo(ContainSubstring(strings.TrimPrefix(link, redeemURL+"/i/")), "the token stays with rolecall")
	})

	It("redeems once from a callback, and a replayed callback redeems nothing", func(ctx SpecContext) {
		inv, link := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 3 })
		v := newVisitor()
		callback := v.acceptUntilCallback(ctx, link, "carol", "carol")
		cookies := v.client.Jar.Cookies(mustParse(redeemURL + redeem.CallbackPath))
		done := v.do(ctx, http.MethodGet, callback, nil, nil)
		Expect(done.status).To(Equal(http.StatusOK), done.body)
		Expect(done.body).To(ContainSubstring("Welcome, oidc:carol"))
		Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))

		By("replaying the callback with the cookie it had: the code is spent")
		replay := newVisitor()
		replay.client.Jar.SetCookies(mustParse(redeemURL+redeem.CallbackPath), cookies)
		again := replay.do(ctx, http.MethodGet, callback, nil, nil)
		Expect(again.status).To(Equal(http.StatusBadRequest))
		Expect(again.body).To(ContainSubstring(`data-code="signin_failed"`))
		Expect(latest(ctx, inv).Status.Uses).To(BeEquivalentTo(1))
	})

	It("refuses a callback without the sign-in cookie, or with another state", func(ctx SpecContext) {
		inv, link := issue(ctx, ns, func(s *invitesv1alpha1.InvitationSpec) { s.MaxUses = 3 })
		v := newVisitor()
		callback := v.acceptUntilCallback(ctx, link, "carol", "carol")

		stranger := newVisitor()
		Expect(stranger.do(ctx, http.MethodGet, callback, nil, nil).status).To(Equal(http.StatusBadRequest), "another browser cannot finish it")

		u := mustParse(callback)
		q := u.Query()
		q.Set("state", strings.Repeat("x", 43))
		u.RawQuery = q.Encode()
		Expect(v.do(ctx, http.MethodGet, u.String(), nil, nil).status).To(Equal(http.StatusBadRequest), "the state must match")
		Expect(latest(ctx, inv).Status.Uses).To(BeZero())
	})
})

func mustParse(raw string) *url.URL {
	u, err := url.Parse(raw)
	Expect(err).NotTo(HaveOccurred())
	return u
}
