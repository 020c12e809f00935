package cli_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/cli"
)

// serviceAccountToken creates a service account and returns a token for it, as
// `kubectl create token [--audience ...]` would.
func serviceAccountToken(ctx context.Context, namespace, name string, audiences ...string) string {
	GinkgoHelper()
	Expect(env.Admin.Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}})).To(Succeed())
	clientset, err := kubernetes.NewForConfig(env.Config)
	Expect(err).NotTo(HaveOccurred())
	request := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences}}
	tr, err := clientset.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, name, request, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// issuedLink waits for the invitation's token and for the redemption server's cache to
// hold it, so that a redemption right after cannot miss a token written moments ago.
func issuedLink(ctx context.Context, namespace, name string) string {
	GinkgoHelper()
	link := strings.TrimSpace(stdout(ctx, "-n", namespace, "link", name, "--wait", "20s"))
	issued := tokenSecret(ctx, namespace, name)
	Eventually(func(g Gomega) {
		cached := &corev1.Secret{}
		g.Expect(redeemCache.Get(ctx, client.ObjectKeyFromObject(issued), cached)).To(Succeed())
		g.Expect(cached.Data[invitesv1alpha1.TokenSecretKey]).To(Equal(issued.Data[invitesv1alpha1.TokenSecretKey]))
	}).Should(Succeed())
	return link
}

var _ = Describe("kubectl invite redeem", func() {
	var (
		ns       string
		newcomer string // a kubeconfig whose user is a service account, by bearer token
	)
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		newcomer = kubeconfigWith(&clientcmdapi.AuthInfo{Token: serviceAccountToken(ctx, ns, "newcomer")})
	})

	Context("with a service account's token in the kubeconfig", func() {
		It("redeems a link (201), and says the roles are already there on a repeat (200)", func(ctx SpecContext) {
			stdout(ctx, "-n", ns, "create", "onboard", "--clusterrole", "view")
			link := issuedLink(ctx, ns, "onboard")
			user := "system:serviceaccount:" + ns + ":newcomer"

			out, errOut, err := inviteWith(ctx, newcomer, "redeem", link)
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(MatchRegexp(`^Redeemed invitation "onboard" in namespace "` + ns + `" as ` + user + `\. You now have:\n` +
				`  ClusterRole/view in namespace ` + ns + ` \(RoleBinding rolecall-[0-9a-f]+\)\n$`))

			out, errOut, err = inviteWith(ctx, newcomer, "redeem", link)
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(HavePrefix(`You had already redeemed invitation "onboard" in namespace "` + ns + `" as ` + user + ". You have:\n"))
			Expect(getInvitation(ctx, ns, "onboard").Status.Uses).To(BeEquivalentTo(1))
		})

		It("prints the server's answer as received with -o json", func(ctx SpecContext) {
			stdout(ctx, "-n", ns, "create", "onboard", "--clusterrole", "view", "--grant-duration", "24h")
			out, _, err := inviteWith(ctx, newcomer, "redeem", issuedLink(ctx, ns, "onboard"), "-o", "json")
			Expect(err).NotTo(HaveOccurred())
			var body struct {
				Invitation, Namespace, User, GrantsExpireAt string
				Grants                                      []struct{ Kind, Name, Namespace, RoleRef string }
			}
			Expect(json.Unmarshal([]byte(out), &body)).To(Succeed(), out)
			Expect(body.Invitation).To(Equal("onboard"))
			Expect(body.User).To(Equal("system:serviceaccount:" + ns + ":newcomer"))
			Expect(body.Grants).To(HaveLen(1))
			Expect(body.Grants[0].RoleRef).To(Equal("ClusterRole/view"))
			Expect(body.GrantsExpireAt).NotTo(BeEmpty())
		})

		It("redeems a code, finding the server through "+cli.RedeemURLEnv, func(ctx SpecContext) {
			stdout(ctx, "-n", ns, "create", "workshop", "--clusterrole", "view", "--token-type", "Code", "--max-uses", "5")
			issuedLink(ctx, ns, "workshop")
			code := string(tokenSecret(ctx, ns, "workshop").Data[invitesv1alpha1.TokenSecretKey])
			Expect(os.Setenv(cli.RedeemURLEnv, redeemURL)).To(Succeed())
			DeferCleanup(os.Unsetenv, cli.RedeemURLEnv)
			out, errOut, err := inviteWith(ctx, newcomer, "redeem", code)
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(HavePrefix(`Redeemed invitation "workshop"`))
		})

		It("shows a spent invitation (410) as a one-line message", func(ctx SpecContext) {
			stdout(ctx, "-n", ns, "create", "single", "--clusterrole", "view", "--max-uses", "1")
			link := issuedLink(ctx, ns, "single")
			_, _, err := inviteWith(ctx, newcomer, "redeem", link)
			Expect(err).NotTo(HaveOccurred())
			latecomer := kubeconfigWith(&clientcmdapi.AuthInfo{Token: serviceAccountToken(ctx, ns, "latecomer")})
			_, _, err = inviteWith(ctx, latecomer, "redeem", link)
			Expect(err).To(MatchError("cannot redeem: every use of the invitation has been redeemed (410 exhausted)"))
		})

		It("shows a revoked invitation (410) as a one-line message", func(ctx SpecContext) {
			stdout(ctx, "-n", ns, "create", "withdrawn", "--clusterrole", "view")
			link := issuedLink(ctx, ns, "withdrawn")
			stdout(ctx, "-n", ns, "revoke", "withdrawn")
			Eventually(func(g Gomega) {
				_, _, err := inviteWith(ctx, newcomer, "redeem", link)
				g.Expect(err).To(MatchError("cannot redeem: the invitation was revoked (410 revoked)"))
			}).Should(Succeed())
		})

		It("shows an unknown token (404) as a one-line message, and its body with -o json", func(ctx SpecContext) {
			out, _, err := inviteWith(ctx, newcomer, "redeem", redeemURL+"/i/AAAAAAAAAAAA.bogusbogusbogusbogusbogusbogusbogus", "-o", "json")
			Expect(err).To(MatchError("cannot redeem: no invitation has this token (404 unknown_token)"))
			Expect(out).To(MatchJSON(`{"code":"unknown_token","message":"no invitation has this token"}`))
		})

		It("reads the token from a token file, too", func(ctx SpecContext) {
			file := writeFile("token", serviceAccountToken(ctx, ns, "from-file"), 0o600)
			fromFile := kubeconfigWith(&clientcmdapi.AuthInfo{TokenFile: file})
			stdout(ctx, "-n", ns, "create", "onboard", "--clusterrole", "view")
			out, errOut, err := inviteWith(ctx, fromFile, "redeem", issuedLink(ctx, ns, "onboard"))
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(ContainSubstring(" as system:serviceaccount:" + ns + ":from-file. "))
		})
	})

	Context("with an exec credential plugin in the kubeconfig", func() {
		It("redeems with the token the plugin hands out", func(ctx SpecContext) {
			credential, err := json.Marshal(map[string]any{
				"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
				"status": map[string]string{"token": serviceAccountToken(ctx, ns, "plugged")},
			})
			Expect(err).NotTo(HaveOccurred())
			plugin := writeFile("credential-plugin", "#!/bin/sh\ncat <<'EOF'\n"+string(credential)+"\nEOF\n", 0o700)
			plugged := kubeconfigWith(&clientcmdapi.AuthInfo{Exec: &clientcmdapi.ExecConfig{
				APIVersion: "client.authentication.k8s.io/v1", Command: plugin, InteractiveMode: clientcmdapi.NeverExecInteractiveMode,
			}})
			stdout(ctx, "-n", ns, "create", "onboard", "--clusterrole", "view")
			out, errOut, err := inviteWith(ctx, plugged, "redeem", issuedLink(ctx, ns, "onboard"))
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(ContainSubstring(" as system:serviceaccount:" + ns + ":plugged. "))
		})
	})

	Context("without a bearer credential", func() {
		It("says the redemption server needs one, and sends nothing", func(ctx SpecContext) {
			_, _, err := inviteWith(ctx, kubeconfig, "redeem", redeemURL+"/i/AAAAAAAAAAAA.secret")
			Expect(err).To(MatchError(ContainSubstring("your kubeconfig's user has no bearer credential (it authenticates with a client certificate")))
			Expect(err).To(MatchError(ContainSubstring("such as an OIDC ID token")))
		})
	})

	Context("when the link or the flags could send the credential astray", func() {
		DescribeTable("refuses before sending anything",
			func(ctx SpecContext, message string, args ...string) {
				_, _, err := inviteWith(ctx, newcomer, append([]string{"redeem"}, args...)...)
				Expect(err).To(MatchError(message))
			},
			Entry("a link to another server than --redeem-url",
				"the link points to https://elsewhere.example, not to your cluster's redemption server https://invite.example.com (from --redeem-url); your credential is not sent to it",
				"https://elsewhere.example/i/AAAA.bbbb", "--redeem-url", "https://invite.example.com"),
			Entry("a link to another port of the same host",
				"the link points to https://invite.example.com:8443, not to your cluster's redemption server https://invite.example.com (from --redeem-url); your credential is not sent to it",
				"https://invite.example.com:8443/i/AAAA.bbbb", "--redeem-url", "https://invite.example.com:443"),
			Entry("plain http to another machine",
				"the redemption server must be reached over https, since your credential travels with the request: http://invite.example.com",
				"AAAA-BBBB-CCCC-DDDD", "--redeem-url", "http://invite.example.com"),
			Entry("a URL that is no invitation link",
				"not an invitation link (…/i/TOKEN): https://invite.example.com/elsewhere",
				"https://invite.example.com/elsewhere"),
			Entry("impersonation, which the server cannot honour",
				`redeem cannot act for someone else (--as or the kubeconfig's "as"): the roles go to whoever the credential belongs to`,
				"--as", "someone", "https://invite.example.com/i/AAAA.bbbb"),
		)
	})

	Context("when the server refuses", func() {
		var (
			status  int
			body    string
			headers http.Header
			got     *http.Request
			gotBody string
			server  *httptest.Server
		)
		BeforeEach(func() {
			headers = http.Header{"Content-Type": {"application/json"}}
			server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = r
				data, _ := io.ReadAll(r.Body)
				gotBody = string(data)
				for k, v := range headers {
					w.Header()[k] = v
				}
				w.WriteHeader(status)
				_, _ = io.WriteString(w, body)
			}))
			DeferCleanup(server.Close)
		})

		DescribeTable("prints one line and fails",
			func(ctx SpecContext, answer int, answerBody, retryAfter, message string) {
				status, body = answer, answerBody
				if retryAfter != "" {
					headers.Set("Retry-After", retryAfter)
				}
				bearer := kubeconfigWith(&clientcmdapi.AuthInfo{Token: "the-credential"}) //nolint:gosec // a test credential
				_, _, err := inviteWith(ctx, bearer, "redeem", server.URL+"/i/AAAA.bbbb", "--redeem-url", server.URL)
				Expect(err).To(MatchError(message))
				Expect(got.Method).To(Equal(http.MethodPost))
				Expect(got.URL.Path).To(Equal("/api/v1/redemptions"))
				Expect(got.Header.Get("Authorization")).To(Equal("Bearer the-credential"))
				Expect(gotBody).To(MatchJSON(`{"token":"AAAA.bbbb"}`))
			},
			Entry("400", 400, `{"code":"malformed","message":"the body must be JSON"}`, "",
				"cannot redeem: the body must be JSON (400 malformed)"),
			Entry("401", 401, `{"code":"unauthenticated","message":"send an ID token"}`, "",
				"cannot redeem: the redemption server does not accept your kubeconfig's credential: send an ID token (401 unauthenticated)"),
			Entry("403", 403, `{"code":"email_mismatch","message":"this invitation is for another email address"}`, "",
				"cannot redeem: this invitation is for another email address (403 email_mismatch)"),
			Entry("429, with when to try again", 429, `{"code":"rate_limited","message":"too many failed attempts from this client; try again later"}`, "42",
				"cannot redeem: too many failed attempts from this client; try again later (429 rate_limited; retry after 42s)"),
			Entry("503", 503, `{"code":"unavailable","message":"the cluster cannot be reached right now; try again in a moment"}`, "",
				"cannot redeem: the cluster cannot be reached right now; try again in a moment (503 unavailable)"),
			Entry("something in front of the server", 502, "<html>Bad Gateway</html>", "",
				"cannot redeem: the redemption server answered 502 Bad Gateway: not an answer of rolecall's redemption server"),
		)

		It("keeps the path a server is published under, and unescapes the token", func(ctx SpecContext) {
			status, body = http.StatusCreated, `{"invitation":"bob","namespace":"team-a","user":"bob","grants":[{"kind":"ClusterRoleBinding","name":"rolecall-1","roleRef":"ClusterRole/view"}]}`
			bearer := kubeconfigWith(&clientcmdapi.AuthInfo{Token: "the-credential"}) //nolint:gosec // a test credential
			out, _, err := inviteWith(ctx, bearer, "redeem", server.URL+"/rolecall/i/AAAA.b%2Bb", "--redeem-url", server.URL+"/rolecall/")
			Expect(err).NotTo(HaveOccurred())
			Expect(got.URL.Path).To(Equal("/rolecall/api/v1/redemptions"))
			Expect(gotBody).To(MatchJSON(`{"token":"AAAA.b+b"}`))
			Expect(out).To(Equal("Redeemed invitation \"bob\" in namespace \"team-a\" as bob. You now have:\n  ClusterRole/view cluster-wide (ClusterRoleBinding rolecall-1)\n"))
		})

		It("does not follow redirects, which would take the credential along", func(ctx SpecContext) {
			status, body = http.StatusTemporaryRedirect, ""
			headers.Set("Location", "https://elsewhere.example/api/v1/redemptions")
			bearer := kubeconfigWith(&clientcmdapi.AuthInfo{Token: "the-credential"}) //nolint:gosec // a test credential
			_, _, err := inviteWith(ctx, bearer, "redeem", server.URL+"/i/AAAA.bbbb", "--redeem-url", server.URL)
			Expect(err).To(MatchError("cannot redeem: the redemption server answered 307 Temporary Redirect: not an answer of rolecall's redemption server"))
		})

		DescribeTable("never takes an answer rolecall does not give for a success",
			func(ctx SpecContext, answer int, contentType, answerBody, message string) {
				status, body = answer, answerBody
				headers.Set("Content-Type", contentType)
				bearer := kubeconfigWith(&clientcmdapi.AuthInfo{Token: "the-credential"}) //nolint:gosec // a test credential
				out, _, err := inviteWith(ctx, bearer, "redeem", "AAAA.bbbb", "--redeem-url", server.URL)
				Expect(err).To(MatchError(ContainSubstring(message)))
				Expect(err).To(MatchError(ContainSubstring("nothing says the roles are yours")))
				Expect(out).To(BeEmpty())
				out, _, err = inviteWith(ctx, bearer, "redeem", "AAAA.bbbb", "--redeem-url", server.URL, "-o", "json")
				Expect(err).To(HaveOccurred())
				Expect(out).To(BeEmpty(), "-o json prints only rolecall's answers")
			},
			Entry("an empty JSON object", 200, "application/json", `{}`, "it is not a redemption: no invitation"),
			Entry("JSON of another shape", 201, "application/json", `{"ok":true,"message":"already redeemed"}`, "it is not a redemption: no invitation"),
			Entry("a redemption without bindings", 200, "application/json",
				`{"invitation":"bob","namespace":"team-a","user":"bob","grants":[]}`, "it is not a redemption: no grants"),
			Entry("a grant that is not a binding", 201, "application/json",
				`{"invitation":"bob","namespace":"team-a","user":"bob","grants":[{"kind":"Secret","name":"x","roleRef":"ClusterRole/admin"}]}`,
				"it is not a redemption: a grant that is no binding"),
			Entry("an HTML page", 200, "text/html; charset=utf-8", "<html>Welcome back!</html>", `its Content-Type is "text/html; charset=utf-8"`),
			Entry("a redemption's JSON served as text", 200, "text/plain",
				`{"invitation":"bob","namespace":"team-a","user":"bob","grants":[{"kind":"RoleBinding","name":"rolecall-1","namespace":"team-a","roleRef":"ClusterRole/view"}]}`,
				`its Content-Type is "text/plain"`),
		)
	})

	Context("without --redeem-url or "+cli.RedeemURLEnv, func() {
		It("finds the redemption server in the cluster, and redeems a code with nothing but the kubeconfig", func(ctx SpecContext) {
			published := &corev1.ConfigMap{}
			Expect(env.Admin.Get(ctx, client.ObjectKey{Namespace: invitesv1alpha1.DiscoveryNamespace, Name: invitesv1alpha1.DiscoveryConfigMap}, published)).To(Succeed())
			Expect(published.Data).To(HaveKeyWithValue(invitesv1alpha1.DiscoveryRedeemURLKey, redeemURL))

			stdout(ctx, "-n", ns, "create", "workshop", "--clusterrole", "view", "--token-type", "Code")
			issuedLink(ctx, ns, "workshop")
			code := string(tokenSecret(ctx, ns, "workshop").Data[invitesv1alpha1.TokenSecretKey])
			out, errOut, err := inviteWith(ctx, newcomer, "redeem", code)
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(HavePrefix(`Redeemed invitation "workshop"`))
		})

		It("refuses a phishing link with a real token before sending the credential anywhere", func(ctx SpecContext) {
			var received atomic.Int32
			phisher := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				received.Add(1)
				w.Header().Set("Content-Type", "application/json")
				_, _ = io.WriteString(w, `{}`)
			}))
			DeferCleanup(phisher.Close)
			stdout(ctx, "-n", ns, "create", "onboard", "--clusterrole", "view")
			link := issuedLink(ctx, ns, "onboard")
			_, token, found := strings.Cut(link, "/i/")
			Expect(found).To(BeTrue())

			_, _, err := inviteWith(ctx, newcomer, "redeem", phisher.URL+"/i/"+token)
			Expect(err).To(MatchError("the link points to " + phisher.URL + ", not to your cluster's redemption server " + redeemURL +
				" (from your cluster's kube-public/rolecall-info); your credential is not sent to it"))
			Expect(received.Load()).To(BeZero(), "the phishing server heard nothing")
			Expect(getInvitation(ctx, ns, "onboard").Status.Uses).To(BeZero())
		})

		It("redeems with a token minted for rolecall alone, which the API server itself refuses, once told the server", func(ctx SpecContext) {
			published := &corev1.ConfigMap{}
			Expect(env.Admin.Get(ctx, client.ObjectKey{Namespace: invitesv1alpha1.DiscoveryNamespace, Name: invitesv1alpha1.DiscoveryConfigMap}, published)).To(Succeed())
			Expect(published.Data).To(HaveKeyWithValue(invitesv1alpha1.DiscoveryTokenAudienceKey, tokenAudience))

			bound := kubeconfigWith(&clientcmdapi.AuthInfo{Token: serviceAccountToken(ctx, ns, "bound", tokenAudience)})
			stdout(ctx, "-n", ns, "create", "onboard", "--clusterrole", "view")
			link := issuedLink(ctx, ns, "onboard")
			_, _, err := inviteWith(ctx, bound, "redeem", link)
			Expect(err).To(MatchError("the API server does not accept your credential, so it cannot say where its redemption server is " +
				"(a token minted for rolecall's audience is meant for rolecall alone): give --redeem-url URL or set " + cli.RedeemURLEnv))

			out, errOut, err := inviteWith(ctx, bound, "redeem", link, "--redeem-url", redeemURL)
			Expect(err).NotTo(HaveOccurred(), errOut)
			Expect(out).To(HavePrefix(`Redeemed invitation "onboard" in namespace "` + ns + `" as system:serviceaccount:` + ns + ":bound."))
		})

		It("says where to find the server when the cluster does not publish it, and sends nothing", func(ctx SpecContext) {
			key := client.ObjectKey{Namespace: invitesv1alpha1.DiscoveryNamespace, Name: invitesv1alpha1.DiscoveryConfigMap}
			published := &corev1.ConfigMap{}
			Expect(env.Admin.Get(ctx, key, published)).To(Succeed())
			Expect(env.Admin.Delete(ctx, published)).To(Succeed())
			DeferCleanup(func(ctx SpecContext) {
				restored := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: published.Labels}, Data: published.Data}
				Expect(env.Admin.Create(ctx, restored)).To(Succeed())
			})
			_, _, err := inviteWith(ctx, newcomer, "redeem", "AAAA-BBBB-CCCC-DDDD")
			Expect(err).To(MatchError("cannot tell where your cluster's redemption server is: kube-public/rolecall-info does not say (or you may not read it); " +
				"give --redeem-url URL or set " + cli.RedeemURLEnv + ", with the URL your cluster's administrators give you"))
		})
	})
})
