package webhook_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

// The admission tests run the manager's webhooks behind a real API server, and act as
// real users authenticated by it.
var (
	env   *testenv.Env
	admin client.Client
)

func TestWebhooks(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Admission Webhook Suite")
}

var _ = BeforeSuite(func() {
	SetDefaultEventuallyTimeout(20 * time.Second)
	ctrl.SetLogger(zap.New(zap.WriteTo(GinkgoWriter), zap.UseDevMode(true)))
	var err error
	env, err = testenv.StartWithWebhooks(manager.Config{AllowRBACDelegation: true, DefaultExpiresAfter: 72 * time.Hour})
	Expect(err).NotTo(HaveOccurred())
	admin = env.Admin
	setUpCluster(context.Background())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// setUpCluster gives every authenticated user the right to manage Invitations (RBAC lets
// them through to admission; policy decides), and creates the tenants' namespaces.
func setUpCluster(ctx context.Context) {
	role := &rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "invitation-author"},
		Rules: []rbacv1.PolicyRule{{
			APIGroups: []string{"invites.rolecall.dev"}, Resources: []string{"invitations"},
			Verbs: []string{"create", "get", "list", "update", "patch", "delete"},
		}},
	}
	Expect(admin.Create(ctx, role)).To(Succeed())
	Expect(admin.Create(ctx, &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "invitation-author"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: role.Name},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: "Group", Name: "system:authenticated"}},
	})).To(Succeed())
	for name, tenant := range map[string]string{"team-a": "team-a", "team-a-prod": "team-a", "team-b": "team-b"} {
		Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tenant": tenant}}})).To(Succeed())
	}
}

// userClient acts as a user the API server authenticates, with the given groups.
func userClient(name string, groups ...string) client.Client {
	cfg, err := env.UserConfig(name, groups...)
	Expect(err).NotTo(HaveOccurred())
	c, err := client.New(cfg, client.Options{Scheme: admin.Scheme()})
	Expect(err).NotTo(HaveOccurred())
	return c
}
