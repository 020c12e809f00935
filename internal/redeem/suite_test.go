package redeem_test

import (
	"context"
	"crypto/rand"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"golang.org/x/time/rate"
	"k8s.io/client-go/rest"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/redeem"
	"github.com/rolecall/rolecall/internal/seal"
)

const publicURL = "https://invite.example.test"

var unlimited = redeem.Limits{FailuresPerClient: rate.Inf, ClientBurst: 1, LockAfter: 1 << 30, LockWindow: time.Minute, LockFor: time.Second}

// Two redemption server replicas, each with its own manager cache and token index key, in
// front of one real API server; the first manager also runs the controllers.
var (
	testEnv *envtest.Environment
	// cfg is the administrator's; attackers act through impersonating copies of it.
	cfg       *rest.Config
	k8sClient client.Client
	// k8sWatcher watches the API server directly, to see every write.
	k8sWatcher client.WithWatch
	fakeClock  *clocktesting.FakeClock
	people     = &directory{users: map[string]identity.User{}}
	// sealer seals as every replica does: tests play the parts of attackers who cannot.
	sealer   *seal.Sealer
	replicas []*replica
	cancel   context.CancelFunc
)

type replica struct {
	server *redeem.Server
	http   *httptest.Server
}

// directory stands in for the identity layer (tested on its own against a real issuer and
// API server): a bearer credential names a person.
type directory struct {
	mu    sync.Mutex
	users map[string]identity.User
}

func (d *directory) add(credential string, u identity.User) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.users[credential] = u
}

func (d *directory) Authenticate(_ context.Context, credential string) (identity.User, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u, ok := d.users[credential]
	if !ok {
		return identity.User{}, identity.ErrUnauthenticated
	}
	return u, nil
}

func TestRedeem(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Redemption Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(30 * time.Second)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	testEnv = &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("..", "..", "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	var err error
	cfg, err = testEnv.Start()
	Expect(err).NotTo(HaveOccurred())
	k8sClient, err = client.New(cfg, client.Options{Scheme: manager.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	k8sWatcher, err = client.NewWithWatch(cfg, client.Options{Scheme: manager.NewScheme()})
	Expect(err).NotTo(HaveOccurred())
	fakeClock = clocktesting.NewFakeClock(time.Now().Truncate(time.Second))

	var ctx context.Context
	ctx, cancel = context.WithCancel(context.Background())
	// Both replicas seal with one key, as replicas sharing the key Secret do.
	sealKey := make([]byte, seal.KeySize)
	_, err = rand.Read(sealKey)
	Expect(err).NotTo(HaveOccurred())
	sealer, err = seal.New(sealKey)
	Expect(err).NotTo(HaveOccurred())
	for i := range 2 {
		mgr, err := ctrl.NewManager(cfg, ctrl.Options{
			Scheme: manager.NewScheme(), Cache: manager.CacheOptions(),
			Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		})
		Expect(err).NotTo(HaveOccurred())
		mcfg := manager.Config{SealKey: sealKey, PublicURL: publicURL, DefaultExpiresAfter: 72 * time.Hour, Clock: fakeClock, AllowRBACDelegation: true}
		Expect(manager.Setup(ctx, mgr, mcfg, manager.Parts{Controllers: i == 0})).To(Succeed())
		live, err := client.New(cfg, client.Options{Scheme: mgr.GetScheme()})
		Expect(err).NotTo(HaveOccurred())
		server := &redeem.Server{
			Reader: mgr.GetClient(), Live: live, Sealer: sealer, Authenticator: people,
			Authorizer: manager.NewAuthorizer(mgr, mcfg), Clock: fakeClock,
			Recorder: mgr.GetEventRecorder("rolecall-redeem"), Log: ctrl.Log.WithName("redeem"),
			AllowedRedirectOrigins: []string{"https://console.example.com"},
			// Every test client shares the loopback address; the limits have specs of their own.
			Limits: unlimited,
		}
		replicas = append(replicas, &replica{server: server, http: httptest.NewServer(server.Handler())})
		go func() {
			defer GinkgoRecover()
			Expect(mgr.Start(ctx)).To(Succeed())
		}()
		Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
	}
})

var _ = AfterSuite(func() {
	for _, r := range replicas {
		r.http.Close()
	}
	if cancel != nil {
		cancel()
	}
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})
