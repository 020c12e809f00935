package e2e

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

// cluster is a real control plane with rolecall's CRDs and webhook configurations, an
// administrator, and the namespace the manager lives in.
type cluster struct {
	env *envtest.Environment
	// webhookClient is the certificate kube-apiserver presents to the webhook server.
	webhookClient *testenv.WebhookClient
	admin         client.Client
	clientset     *kubernetes.Clientset
	kubeconfig    []byte
}

func startCluster(ctx context.Context) *cluster {
	GinkgoHelper()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{
			Paths:            []string{filepath.Join("..", "..", "config", "webhook")},
			LocalServingHost: "127.0.0.1", LocalServingPort: freePort(),
		},
	}
	// As in production, the webhook server answers only the API server's client certificate.
	certDir, err := os.MkdirTemp("", "rolecall-e2e-webhook-client-")
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(os.RemoveAll, certDir)
	webhookClient, err := testenv.PresentWebhookClientCert(env, certDir)
	Expect(err).NotTo(HaveOccurred())
	_, err = env.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(env.Stop)

	user, err := env.AddUser(envtest.User{Name: "e2e-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	c := &cluster{env: env, webhookClient: webhookClient}
	c.admin, err = client.New(user.Config(), client.Options{Scheme: manager.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	c.clientset, err = kubernetes.NewForConfig(user.Config())
	Expect(err).NotTo(HaveOccurred())
	c.kubeconfig, err = user.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	Expect(c.admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "rolecall-system"}})).To(Succeed())
	return c
}

// writeKubeconfig writes the administrator's kubeconfig, optionally pointed at another
// address than the API server's own (a proxy that can cut it off).
func (c *cluster) writeKubeconfig(server string) string {
	GinkgoHelper()
	raw := string(c.kubeconfig)
	if server != "" {
		raw = strings.ReplaceAll(raw, c.apiServerAddr(), server)
	}
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(path, []byte(raw), 0o600)).To(Succeed())
	return path
}

// managerProcess is the manager binary, running.
type managerProcess struct {
	session                          *gexec.Session
	redeemURL, probesURL, metricsURL string
	args                             []string
}

// startManager runs the manager binary against the cluster, on free ports.
func (c *cluster) startManager(kubeconfig string, extra ...string) *managerProcess {
	GinkgoHelper()
	m := c.newManager(kubeconfig, extra...)
	m.start()
	return m
}

// newManager prepares the manager's ports and arguments without starting it, for specs
// whose flags name the manager's own addresses (--public-url). A flag given again in
// extra, or appended to args, wins over the default: Go's flag package keeps the last.
func (c *cluster) newManager(kubeconfig string, extra ...string) *managerProcess {
	GinkgoHelper()
	metricsPort, probesPort, redeemPort := freePort(), freePort(), freePort()
	hook := c.env.WebhookInstallOptions
	m := &managerProcess{
		redeemURL:  fmt.Sprintf("http://127.0.0.1:%d", redeemPort),
		metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metricsPort),
		probesURL:  fmt.Sprintf("http://127.0.0.1:%d", probesPort),
		args: append([]string{
			"--kubeconfig=" + kubeconfig,
			"--namespace=rolecall-system",
			"--public-url=https://invite.example.test",
			fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metricsPort),
			fmt.Sprintf("--redeem-bind-address=127.0.0.1:%d", redeemPort),
			fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probesPort),
			"--webhook-cert-management=external", "--webhook-host=" + hook.LocalServingHost,
			fmt.Sprintf("--webhook-port=%d", hook.LocalServingPort), "--webhook-cert-dir=" + hook.LocalServingCertDir,
			"--webhook-client-ca-file=" + c.webhookClient.CAFile, "--webhook-client-names=" + c.webhookClient.Name,
		}, extra...),
	}
	return m
}

func (m *managerProcess) start() {
	GinkgoHelper()
	// Not tied to a context: specs stop it themselves, with the signal they choose.
	cmd := exec.Command(managerBinary, m.args...) //nolint:gosec,noctx // the binary this suite just built
	var err error
	m.session, err = gexec.Start(cmd, GinkgoWriter, GinkgoWriter)
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(func() { m.session.Kill() })
}

// waitReady waits until the manager's probes and its redemption server answer.
func (m *managerProcess) waitReady(ctx context.Context) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		for _, url := range []string{m.probesURL + "/readyz", m.redeemURL + "/readyz"} {
			code, _, err := get(ctx, url)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
		}
	}).Should(Succeed())
}

// leaseName is the leader election Lease of every manager replica, in rolecall-system.
const leaseName = "rolecall.invites.rolecall.dev"

// leads says whether this replica holds the Lease, as its own metrics report it
// (client-go's leader_election_master_status gauge).
func (m *managerProcess) leads(ctx context.Context) bool {
	_, body, err := get(ctx, m.metricsURL)
	return err == nil && strings.Contains(body, `leader_election_master_status{name="`+leaseName+`"} 1`)
}

// output is everything the manager wrote so far, standard output and error together.
func (m *managerProcess) output() string {
	return string(m.session.Out.Contents()) + string(m.session.Err.Contents())
}

// leaseHolder is the identity the Lease names as leader, or "" when none does yet.
func (c *cluster) leaseHolder(ctx context.Context) (string, error) {
	lease := &coordinationv1.Lease{}
	err := c.admin.Get(ctx, client.ObjectKey{Namespace: "rolecall-system", Name: leaseName}, lease)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	return ptr.Deref(lease.Spec.HolderIdentity, ""), err
}

// apiServerAddr is the API server's host:port.
func (c *cluster) apiServerAddr() string {
	GinkgoHelper()
	u, err := url.Parse(c.env.Config.Host)
	Expect(err).NotTo(HaveOccurred())
	return u.Host
}
