// Package gitops_test checks what rolecall promises to GitOps tools such as Argo CD: the
// shipped health checks judge real invitations as documented, applying the same manifests
// twice changes nothing, and the Secrets rolecall generates are never mistaken for
// objects from Git.
package gitops_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/rolecall/rolecall/internal/certs"
	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/mailpit"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

// repoRoot is where config/ is, seen from this package.
var repoRoot = filepath.Join("..", "..")

var (
	testEnv *envtest.Environment
	// webhookClient is the certificate kube-apiserver presents to the webhook server.
	webhookClient *testenv.WebhookClient
	// admin is a cluster administrator (system:masters) talking to the API server directly,
	// so assertions never read a stale cache.
	admin client.Client
	// kubectl is the control plane's own kubectl, and kubeconfig an administrator's
	// kubeconfig for it: the tool a GitOps controller's apply is modelled on.
	kubectl, kubeconfig string
	// scripts are the data of the argocd-cm that config/argocd renders.
	scripts     map[string]string
	stopManager context.CancelFunc
)

func TestGitOps(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "GitOps Suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	SetDefaultEventuallyTimeout(30 * time.Second)
	SetDefaultEventuallyPollingInterval(100 * time.Millisecond)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	kubectl = filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(repoRoot, "config", "webhook")}},
	}
	// As in production, the webhook server answers only the API server's client certificate.
	var err error
	webhookClient, err = testenv.PresentWebhookClientCert(testEnv, GinkgoT().TempDir())
	Expect(err).NotTo(HaveOccurred())
	cfg, err := testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	admin, err = client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	startManager(startChatSystem())
	kubeconfig = writeAdminKubeconfig()
	grantInvitationAuthoring(ctx)
	scripts = healthScripts(ctx)
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

// startChatSystem stands in for the chat or ticket system that receives delivery webhooks.
// It answers by the invitation's name, so that each spec picks the outcome it needs:
// "refused-*" is refused for good, "flaky-*" fails for now, anything else is delivered.
func startChatSystem() *delivery.Webhook {
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var invite delivery.Invite
		if err := json.NewDecoder(r.Body).Decode(&invite); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		switch {
		case strings.HasPrefix(invite.Name, "refused-"):
			w.WriteHeader(http.StatusForbidden)
		case strings.HasPrefix(invite.Name, "flaky-"):
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	DeferCleanup(server.Close)
	key := filepath.Join(GinkgoT().TempDir(), "delivery-webhook")
	Expect(os.WriteFile(key, []byte("a signing key for the test"), 0o600)).To(Succeed())
	return &delivery.Webhook{Poster: &delivery.SignedPoster{URL: server.URL, SecretFile: key}}
}

// startManager runs rolecall as users run it, minus the redemption server: the
// controllers write status, the admission webhooks stamp inviters and authorize, and links
// are delivered by webhook or by mail to a real SMTP server (mailpit). The clock is real, so expiry happens
// when it says; a failed delivery waits an hour before its next attempt, so a retrying
// delivery stays that way while a spec looks at it.
func startManager(chat *delivery.Webhook) {
	hook := testEnv.WebhookInstallOptions
	requireAPIServer, err := certs.RequireClientCertificate(webhookClient.CAFile, []string{webhookClient.Name})
	Expect(err).NotTo(HaveOccurred())
	mgr, err := ctrl.NewManager(testEnv.Config, ctrl.Options{
		Scheme: manager.NewScheme(), Cache: manager.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: hook.LocalServingHost, Port: hook.LocalServingPort, CertDir: hook.LocalServingCertDir,
			TLSOpts: []func(*tls.Config){requireAPIServer},
		}),
	})
	Expect(err).NotTo(HaveOccurred())
	var ctx context.Context
	ctx, stopManager = context.WithCancel(context.Background()) //nolint:gosec // called in AfterSuite
	Expect(manager.Setup(ctx, mgr, manager.Config{
		PublicURL: "https://invite.example.test", DefaultExpiresAfter: 72 * time.Hour, AllowRBACDelegation: true,
		Webhook: chat, Mail: startMailpit(), DeliveryBackoff: time.Hour,
	}, manager.Parts{Controllers: true, Webhooks: true})).To(Succeed())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	// Admission fails closed: nothing can be created until the webhook server answers.
	Eventually(func() error { return mgr.GetWebhookServer().StartedChecker()(nil) }).Should(Succeed())
}

// startMailpit runs a real SMTP server for the samples' mailed invitation.
func startMailpit() *delivery.Mail {
	server, err := mailpit.Start(context.Background(), mailpit.Options{Dir: GinkgoT().TempDir()})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(server.Stop)
	return &delivery.Mail{Host: server.SMTPHost, Port: server.SMTPPort, TLS: delivery.TLSNone, From: "invites@example.com"}
}

// writeAdminKubeconfig gives kubectl an administrator of its own, as a GitOps controller
// is usually bound to cluster-admin.
func writeAdminKubeconfig() string {
	user, err := testEnv.AddUser(envtest.User{Name: "argocd-application-controller", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	data, err := user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(path, data, 0o600)).To(Succeed())
	return path
}

// grantInvitationAuthoring lets every authenticated user manage Invitations, so RBAC lets
// them through to admission, where rolecall's policy decides.
func grantInvitationAuthoring(ctx context.Context) {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "invitation-author"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"invites.rolecall.dev"}, Resources: []string{"invitations"},
			Verbs: []string{"create", "get", "list", "watch", "update", "patch", "delete"},
		}},
	}
	Expect(admin.Create(ctx, role)).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "invitation-author"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:authenticated"}},
	})).To(Succeed())
}

// newNamespace gives each spec a namespace of its own.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "gitops-"}}
	Expect(admin.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// runKubectl runs the control plane's kubectl as the administrator and returns what it
// printed, stdout and stderr together.
func runKubectl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, kubectl, append([]string{"--kubeconfig=" + kubeconfig}, args...)...) //nolint:gosec // the control plane's own kubectl, with arguments from the tests
	out, err := cmd.CombinedOutput()
	return string(out), err
}
