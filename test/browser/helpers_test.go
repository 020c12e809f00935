package browser

import (
	"context"
	"net/http"
	"time"

	"github.com/chromedp/chromedp"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// admin is what the admission webhook would record for a cluster administrator.
var admin = &invitesv1alpha1.Inviter{Username: "platform-admin", Groups: []string{"system:masters", "system:authenticated"}}

// newBrowser starts a fresh headless Chromium (its own profile, so no sign-in carries
// over between specs) and stops it when the spec ends.
func newBrowser() context.Context {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium()),
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(GinkgoT().TempDir()),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		// The provider's CA is generated for each run and Chromium keeps its own trust
		// store; every server here is on loopback.
		chromedp.Flag("ignore-certificate-errors", true),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	browser, cancelBrowser := chromedp.NewContext(alloc)
	browser, cancelTimeout := context.WithTimeout(browser, 90*time.Second)
	DeferCleanup(func() { cancelTimeout(); cancelBrowser(); cancelAlloc() })
	return browser
}

// signIn fills in the provider's login form.
func signIn(username, password string) chromedp.Action[chromedp.Void] {
	return chromedp.Steps(
		chromedp.WaitVisible(chromedp.ID("username")),
		chromedp.SendKeys(chromedp.ID("username"), username),
		chromedp.SendKeys(chromedp.ID("password"), password),
		chromedp.Click(chromedp.ID("sign-in")),
	)
}

// do runs browser steps and fails the spec if one fails.
func do(b context.Context, steps ...chromedp.Action[chromedp.Void]) {
	GinkgoHelper()
	Expect(chromedp.Do(b, steps...)).To(Succeed())
}

// text reads the text of the element with this id, waiting for it to appear.
func text(b context.Context, id string) string {
	GinkgoHelper()
	value, err := chromedp.Run(b, chromedp.Text(chromedp.ID(id)))
	Expect(err).NotTo(HaveOccurred())
	return value
}

// problemCode is the code of the error page being shown.
func problemCode(b context.Context) string {
	GinkgoHelper()
	attr, err := chromedp.Run(b, chromedp.AttributeValue(chromedp.ID("problem"), "data-code"))
	Expect(err).NotTo(HaveOccurred())
	return attr.Value
}

// newNamespace makes a namespace with a Role that can read pods and nothing else.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "team-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	Expect(k8sClient.Create(ctx, &rbacv1.Role{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: "pod-reader"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list"}}},
	})).To(Succeed())
	return ns.Name
}

// issue creates an invitation to read pods and returns it with its link, once the
// redemption server can find it.
func issue(ctx context.Context, ns string, mutate func(*invitesv1alpha1.InvitationSpec)) (*invitesv1alpha1.Invitation, string) {
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "welcome-", Namespace: ns},
		Spec: invitesv1alpha1.InvitationSpec{
			Grants: []invitesv1alpha1.Grant{{Role: "pod-reader"}}, MaxUses: 1, Inviter: admin,
		},
	}
	if mutate != nil {
		mutate(&inv.Spec)
	}
	Expect(k8sClient.Create(ctx, inv)).To(Succeed())
	var link string
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
		g.Expect(inv.Status.Phase).To(Equal(invitesv1alpha1.PhaseActive))
		secret := &corev1.Secret{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: inv.Status.TokenSecretRef.Name}, secret)).To(Succeed())
		link = string(secret.Data[invitesv1alpha1.URLSecretKey])
		g.Expect(link).NotTo(BeEmpty())
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
		g.Expect(err).NotTo(HaveOccurred())
		resp, err := http.DefaultClient.Do(req)
		g.Expect(err).NotTo(HaveOccurred())
		_ = resp.Body.Close()
		g.Expect(resp.StatusCode).To(Equal(http.StatusOK), "the redemption server's cache has the token")
	}).Should(Succeed())
	return inv, link
}

func latest(ctx context.Context, inv *invitesv1alpha1.Invitation) *invitesv1alpha1.Invitation {
	out := &invitesv1alpha1.Invitation{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(inv), out)).To(Succeed())
	return out
}

// asUser is a clientset that authenticates to kube-apiserver with an ID token only.
func asUser(idToken string) *kubernetes.Clientset {
	cfg := &rest.Config{Host: testEnv.Config.Host, BearerToken: idToken, TLSClientConfig: rest.TLSClientConfig{CAData: testEnv.Config.CAData}}
	cs, err := kubernetes.NewForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	return cs
}

func clientKey(ns, name string) client.ObjectKey { return client.ObjectKey{Namespace: ns, Name: name} }
