package cli_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
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

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

var (
	env *testenv.Env
	// kubeconfig is an administrator's, who may impersonate the users under test. Its user
	// authenticates with a client certificate.
	kubeconfig string
	// redeemURL is the redemption server's base URL, and the controllers' public URL, so
	// that the links they issue lead to it.
	redeemURL string
	// redeemCache is the redemption server's view of the cluster, which a spec waits on
	// before redeeming a token written moments ago.
	redeemCache client.Client
	stopManager context.CancelFunc
)

func TestCLI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl invite Suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	SetDefaultEventuallyTimeout(20 * time.Second)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.StartWithWebhooks(manager.Config{AllowRBACDelegation: true, DefaultExpiresAfter: 72 * time.Hour})
	Expect(err).NotTo(HaveOccurred())
	admin, err := env.Environment.AddUser(envtest.User{Name: "cli-admin", Groups: []string{"system:masters"}}, nil)
	Expect(err).NotTo(HaveOccurred())
	raw, err := admin.KubeConfig()
	Expect(err).NotTo(HaveOccurred())
	kubeconfig = filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(os.WriteFile(kubeconfig, raw, 0o600)).To(Succeed())
	setUpCluster(ctx)
	startControllersAndRedemption()
})

var _ = AfterSuite(func() {
	if stopManager != nil {
		stopManager()
	}
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// setUpCluster: everyone may manage Invitations as far as RBAC goes; team leads may
// invite editors and viewers into team-a by policy.
func setUpCluster(ctx context.Context) {
	c := env.Admin
	Expect(c.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a", Labels: map[string]string{"tenant": "team-a"}}})).To(Succeed())
	Expect(c.Create(ctx, &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "invitation-author"},
		Rules:      []rbacv1.PolicyRule{{APIGroups: []string{"invites.rolecall.dev"}, Resources: []string{"invitations"}, Verbs: []string{"create"}}},
	})).To(Succeed())
	Expect(c.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "invitation-author"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "invitation-author"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:authenticated"}},
	})).To(Succeed())
	Expect(c.Create(ctx, &invitesv1alpha1.RoleGrantPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: "team-leads"},
		Spec: invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "team-leads"}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "team-a"}},
			GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}, {ClusterRole: "view"}},
		},
	})).To(Succeed())
}

// tokenAudience is the audience the redemption server accepts service account tokens for,
// besides the API server's own.
const tokenAudience = "rolecall"

// startControllersAndRedemption runs what issues tokens and redeems them, beside the
// webhooks testenv runs: a manager with the controllers and the redemption server, which
// accepts whatever bearer credential the API server accepts (service account tokens here),
// and service account tokens minted for tokenAudience.
func startControllersAndRedemption() {
	listener, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	redeemURL = "http://" + listener.Addr().String()
	mgr, err := ctrl.NewManager(env.Config, ctrl.Options{
		Scheme: manager.NewScheme(), Cache: manager.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
	})
	Expect(err).NotTo(HaveOccurred())
	var ctx context.Context
	ctx, stopManager = context.WithCancel(context.Background()) //nolint:gosec // called in AfterSuite
	Expect(manager.Setup(ctx, mgr, manager.Config{
		PublicURL: redeemURL, DefaultExpiresAfter: 72 * time.Hour, AllowRBACDelegation: true,
		Authenticator:  identity.TokenReviews(env.Admin, tokenAudience),
		TokenAudience:  tokenAudience,
		RedeemListener: listener,
	}, manager.Parts{Controllers: true, Redemption: true})).To(Succeed())
	redeemCache = mgr.GetClient()
	go func() {
		defer GinkgoRecover()
		Expect(mgr.Start(ctx)).To(Succeed())
	}()
	Expect(mgr.GetCache().WaitForCacheSync(ctx)).To(BeTrue())
}

// newNamespace gives a spec a namespace of its own.
func newNamespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "cli-"}}
	Expect(env.Admin.Create(ctx, ns)).To(Succeed())
	return ns.Name
}
