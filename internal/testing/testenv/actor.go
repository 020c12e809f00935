package testenv

import (
	"context"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rolecall/rolecall/internal/manager"
)

// Actor returns a client for a user who holds exactly the given rules in the namespace,
// granted by an administrator (admin) the ordinary way, with a Role and a RoleBinding
// named role: security tests play the weakest actor who could try an attack through it.
// The client impersonates the user through the administrator's config.
func Actor(ctx context.Context, admin client.Client, config *rest.Config, ns, role, user string, rules ...rbacv1.PolicyRule) (client.Client, error) {
	if err := admin.Create(ctx, &rbacv1.Role{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role}, Rules: rules}); err != nil {
		return nil, err
	}
	err := admin.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: role},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: role},
	})
	if err != nil {
		return nil, err
	}
	as := rest.CopyConfig(config)
	as.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: []string{"system:authenticated"}}
	return client.New(as, client.Options{Scheme: manager.NewScheme()})
}
