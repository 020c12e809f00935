package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/pflag"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// invitationFlags describe an invitation on the command line, or name a file holding one.
type invitationFlags struct {
	file          string
	clusterRoles  []string
	roles         []string
	clusterWide   bool
	email         string
	maxUses       int32
	expiresAfter  time.Duration
	grantDuration time.Duration
	tokenType     string
}

func (f *invitationFlags) bind(fs *pflag.FlagSet) {
	fs.StringVarP(&f.file, "filename", "f", "", "A YAML file holding the Invitation (instead of the flags below).")
	fs.StringArrayVar(&f.clusterRoles, "clusterrole", nil, "A ClusterRole to grant, as NAME or NAME@NAMESPACE; repeatable.")
	fs.StringArrayVar(&f.roles, "role", nil, "A Role to grant, as NAME or NAME@NAMESPACE; repeatable.")
	fs.BoolVar(&f.clusterWide, "cluster-wide", false, "Grant the --clusterrole roles cluster-wide (ClusterRoleBindings).")
	fs.StringVar(&f.email, "email", "", "Bind the invitation to this verified email address.")
	fs.Int32Var(&f.maxUses, "max-uses", 1, "How many people may redeem it.")
	fs.DurationVar(&f.expiresAfter, "expires-after", 0, "Token lifetime, such as 72h (default: the manager's).")
	fs.DurationVar(&f.grantDuration, "grant-duration", 0, "How long each grant lasts after redemption, such as 720h.")
	fs.StringVar(&f.tokenType, "token-type", string(invitesv1alpha1.TokenTypeLink), "Link, Code or Custom.")
}

// invitation builds the Invitation the flags describe, in the given namespace.
func (f *invitationFlags) invitation(name, namespace string) (*invitesv1alpha1.Invitation, error) {
	if f.file != "" {
		return readInvitation(f.file, namespace)
	}
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
		Spec: invitesv1alpha1.InvitationSpec{
			Email: f.email, MaxUses: f.maxUses, TokenType: invitesv1alpha1.TokenType(f.tokenType),
		},
	}
	if name == "" {
		inv.GenerateName = "policy-check-"
	}
	if f.expiresAfter > 0 {
		inv.Spec.ExpiresAfter = &metav1.Duration{Duration: f.expiresAfter}
	}
	if f.grantDuration > 0 {
		inv.Spec.GrantDuration = &metav1.Duration{Duration: f.grantDuration}
	}
	for _, spec := range f.clusterRoles {
		role, ns := splitAt(spec)
		inv.Spec.Grants = append(inv.Spec.Grants, invitesv1alpha1.Grant{ClusterRole: role, Namespace: ns, ClusterWide: f.clusterWide})
	}
	for _, spec := range f.roles {
		role, ns := splitAt(spec)
		inv.Spec.Grants = append(inv.Spec.Grants, invitesv1alpha1.Grant{Role: role, Namespace: ns})
	}
	if len(inv.Spec.Grants) == 0 {
		return nil, fmt.Errorf("say what to grant: --clusterrole NAME[@NAMESPACE] or --role NAME[@NAMESPACE], or give -f FILE")
	}
	return inv, nil
}

func splitAt(spec string) (name, namespace string) {
	name, namespace, _ = strings.Cut(spec, "@")
	return name, namespace
}

func readInvitation(path, namespace string) (*invitesv1alpha1.Invitation, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the user names the file to read
	if err != nil {
		return nil, err
	}
	inv := &invitesv1alpha1.Invitation{}
	if err := yaml.UnmarshalStrict(data, inv); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if inv.Kind != "Invitation" {
		return nil, fmt.Errorf("%s: expected kind Invitation, found %q", path, inv.Kind)
	}
	if inv.Namespace == "" {
		inv.Namespace = namespace
	}
	return inv, nil
}
