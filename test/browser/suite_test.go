// Package browser runs the invitation journey in a real browser: Debian's Chromium, driven
// by chromedp, against the redemption server, a real OpenID provider on loopback, and a
// kube-apiserver that trusts that provider. Then it proves the grant with the invited
// person's own ID token.
package browser

import (
	"context"
	"crypto/rand"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/redeem"
	"github.com/rolecall/rolecall/internal/testing/devidp"
	"github.com/rolecall/rolecall/internal/testing/oidcconfig"
)

const clientID = "rolecall"

var (
	testEnv   *envtest.Environment
	k8sClient client.Client
	idp       *devidp.Server
	redeemURL string
	console   *httptest.Server
	cancel    context.CancelFunc
)

func TestBrowser(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Browser Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(30 * time.Second)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	// The provider's OpenID library logs through the default slog logger.
	slog.SetDefault(slog.New(slog.NewTextHandler(GinkgoWriter, nil)))
	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())

	// The redemption server's port must be known before the provider, which only sends
	// people back to registered redirect URIs.
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	redeemURL = "http://" + listener.Addr().String()

	dir := GinkgoT().TempDir()
	idp, err = devidp.Start(ctx, devidp.Options{
		Addr: "127.0.0.1:0", Dir: dir, Users: devidp.DemoUsers(),
		Clients: []devidp.Client{{ID: clientID, RedirectURIs: []string{redeemURL + redeem.CallbackPath}}},
	})
	Expect(err).NotTo(HaveOccurred())
	configPath, err := oidcconfig.Write(dir, oidcconfig.Issuer{URL: idp.Issuer, CAPEM: idp.CAPEM, Audience: clientID, UsernamePrefix: "oidc:", GroupsPrefix: "oidc:"})
	Expect(err).NotTo(HaveOccurred())

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	testEnv.ControlPlane.GetAPIServer().Configure().Set("authentication-config", configPath)
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	Expect(err).NotTo(HaveOccurred())

	console = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(`<!doctype html><title>Console</title><h1 id="console">Team console</h1>`))
	}))
	startManager(ctx, cfg, configPath, listener)
})

// startManager runs the controllers and the redemption server in this process, configured
// as the manager binary configures them: the same authentication file as kube-apiserver.
func startManager(ctx context.Context, cfg *rest.Config, configPath string, listener net.Listener) {
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme: manager.NewScheme(), Cache: manager.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	authConfig, err := identity.LoadAuthenticationConfiguration(configPath)
	Expect(err).NotTo(HaveOccurred())
	jwt, err := identity.NewJWT(ctx, authConfig)
	Expect(err).NotTo(HaveOccurred())
	sessionKey := make([]byte, 32)
	_, _ = rand.Read(sessionKey)
	mcfg := manager.Config{
		PublicURL: redeemURL, DefaultExpiresAfter: time.Hour, AllowRBACDelegation: true,
		Authenticator: identity.Chain{jwt}, RedeemListener: listener,
		AllowedRedirectOrigins: []string{console.URL},
		SignIn: &redeem.SignIn{
			IssuerURL: idp.Issuer, ClientID: clientID, PublicURL: redeemURL, Scopes: []string{"email", "profile"},
			SessionKey: sessionKey, HTTPClient: idp.HTTPClient(),
		},
	}
	Expect(manager.Setup(ctx, mgr, mcfg, manager.Parts{Controllers: true, Redemption: true})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	Eventually(func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, redeemURL+"/readyz", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}).Should(Succeed())
}

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if console != nil {
		console.Close()
	}
	if idp != nil {
		_ = idp.Close()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// chromium finds Debian's Chromium (CHROMIUM overrides).
func chromium() string {
	if path := os.Getenv("CHROMIUM"); path != "" {
		return path
	}
	path, err := exec.LookPath("chromium")
	Expect(err).NotTo(HaveOccurred(), "the browser tests need Chromium: apt-get install chromium")
	return path
}
