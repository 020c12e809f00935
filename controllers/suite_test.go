package controllers_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"go.uber.org/zap/zapcore"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/testing/mailpit"
)

const publicURL = "https://invite.example.test"

var (
	testEnv *envtest.Environment
	cfg     *rest.Config
	// k8sClient talks to the API server directly, so assertions never read a stale cache.
	k8sClient client.Client
	// cachedClient is the manager's own client, which reads Secrets through its cache.
	cachedClient client.Client
	fakeClock    *clocktesting.FakeClock
	// sealer seals as the manager does: tests make the bindings a redemption would.
	sealer     *seal.Sealer
	managerLog = &syncBuffer{}
	cancel     context.CancelFunc
	// mailServer is a real SMTP server (mailpit) that mail delivery sends to.
	mailServer *mailpit.Server
	// chat receives webhook deliveries; idp receives identity provider hook calls.
	chat, idp *receiver
)

// syncBuffer collects the manager's log output so tests can assert what it never contains.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestControllers(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Controllers Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	SetDefaultEventuallyPollingInterval(50 * time.Millisecond)
	// The most verbose level anyone could ask for, through the same cap the manager applies,
	// so a token logged at any verbosity would be caught.
	ctrl.SetLogger(zap.New(zap.WriteTo(io.MultiWriter(GinkgoWriter, managerLog)), zap.UseDevMode(true),
		zap.Level(manager.CapVerbosity(zapcore.Level(-10)))))

	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())

	scheme := manager.NewScheme()
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())

	mgr, err := ctrl.NewManager(cfg, ctrl.Options{
		Scheme:                 scheme,
		Cache:                  manager.CacheOptions(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	// Whole seconds: the API server stores times to the second.
	fakeClock = clocktesting.NewFakeClock(time.Now().Truncate(time.Second))
	mailServer, err = mailpit.Start(context.Background(), mailpit.Options{})
	Expect(err).NotTo(HaveOccurred())
	chat, idp = newReceiver(), newReceiver()
	sealKey := make([]byte, seal.KeySize)
	_, err = rand.Read(sealKey)
	Expect(err).NotTo(HaveOccurred())
	sealer, err = seal.New(sealKey)
	Expect(err).NotTo(HaveOccurred())
	Expect(manager.Setup(context.Background(), mgr, manager.Config{
		SealKey:   sealKey,
		PublicURL: publicURL, DefaultExpiresAfter: 72 * time.Hour, Clock: fakeClock, AllowRBACDelegation: true,
		Mail: &delivery.Mail{
			Host: mailServer.SMTPHost, Port: mailServer.SMTPPort, TLS: delivery.TLSNone, From: "Platform team <invites@example.com>",
		},
		Webhook:         &delivery.Webhook{Poster: chat.poster()},
		IDPHook:         &delivery.IDPHook{Poster: idp.poster()},
		DeliveryBackoff: 50 * time.Millisecond,
	}, manager.Parts{Controllers: true})).To(Succeed())
	cachedClient = mgr.GetClient()

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
})

var _ = AfterSuite(func() {
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
	if mailServer != nil {
		mailServer.Stop()
	}
})

// newNamespace gives each spec a namespace of its own.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "spec-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}
