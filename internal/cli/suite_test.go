package cli_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testenv"
)

var (
	env *testenv.Env
	// kubeconfig is an administrator's, who may impersonate the users under test.
	kubeconfig string
)

func TestCLI(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "kubectl invite Suite")
}

var _ = BeforeSuite(func(ctx SpecContext) {
	SetDefaultEventuallyTimeout(20 * time.Second)
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
})

var _ = AfterSuite(func() {
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
