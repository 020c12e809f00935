package redeem_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/redeem"
)

// discoveryOnly is an OpenID provider that answers discovery and nothing else: enough for
// the landing page's form to start a sign-in.
func discoveryOnly() *httptest.Server {
	var issuer *httptest.Server
	issuer = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/.well-known/openid-configuration" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{
			"issuer": issuer.URL, "authorization_endpoint": issuer.URL + "/auth",
			"token_endpoint": issuer.URL + "/token", "jwks_uri": issuer.URL + "/keys",
		})
	}))
	DeferCleanup(issuer.Close)
	return issuer
}

// postForm posts the landing page's form from a client, with the CSRF cookie the page set.
func postForm(ctx context.Context, c *http.Client, r *replica, tok string, csrf *http.Cookie, body string) *http.Response {
	GinkgoHelper()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.http.URL+"/i/"+tok+"/accept", strings.NewReader(body))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.AddCookie(csrf)
	resp, err := c.Do(req)
	Expect(err).NotTo(HaveOccurred())
	Expect(resp.Body.Close()).To(Succeed())
	return resp
}

var _ = Describe("The landing page's form", func() {
	var (
		ns   string
		r    *replica
		tok  string
		csrf *http.Cookie
	)
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		issuer := discoveryOnly()
		r = limited(redeem.DefaultLimits, func(s *redeem.Server) {
			s.SignIn = &redeem.SignIn{
				IssuerURL: issuer.URL, ClientID: "rolecall", PublicURL: "http://127.0.0.1",
				SessionKey: []byte(strings.Repeat("k", 32)),
			}
		})
		_, tok = issue(ctx, ns)
		openEventually(ctx, replicas[0], tok)
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.http.URL+"/i/"+tok, nil)
		Expect(err).NotTo(HaveOccurred())
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.Body.Close()).To(Succeed())
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		for _, c := range resp.Cookies() {
			if c.Name == "rolecall_csrf" {
				csrf = c
			}
		}
		Expect(csrf).NotTo(BeNil())
	})

	It("starts the sign-in for the form the page sends", func(ctx SpecContext) {
		resp := postForm(ctx, noRedirects, r, tok, csrf, "csrf="+csrf.Value)
		Expect(resp.StatusCode).To(Equal(http.StatusSeeOther))
		Expect(resp.Header.Get("Location")).To(ContainSubstring("/auth?"))
	})

	It("refuses a body larger than the form unread, even with the right CSRF token", func(ctx SpecContext) {
		resp := postForm(ctx, noRedirects, r, tok, csrf, "csrf="+csrf.Value+"&padding="+strings.Repeat("x", 4<<10))
		Expect(resp.StatusCode).To(Equal(http.StatusRequestEntityTooLarge))
		Expect(resp.Header.Get("Location")).To(BeEmpty(), "no sign-in started")
	})

	It("refuses a client without budget before reading its form", func(ctx SpecContext) {
		guesser := from("127.0.0.77")
		for i := range 10 {
			Expect(openFrom(ctx, guesser, r, fmt.Sprintf("guess-%d-%s", i, strings.Repeat("x", 20)))).To(Equal(http.StatusNotFound))
		}
		// A body the form parser would reject: answered 429 all the same, since it is
		// never parsed.
		resp := postForm(ctx, guesser, r, tok, csrf, "csrf=%zz")
		Expect(resp.StatusCode).To(Equal(http.StatusTooManyRequests))
		Expect(resp.Header.Get("Retry-After")).NotTo(BeEmpty())
	})
})
