package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
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
	customSecret  string
	redirectURL   string
	deliver       string
	hideInviter   bool
}

// deliveryChannels are the values --deliver takes.
var deliveryChannels = []string{"email", "webhook"}

func (f *invitationFlags) bind(fs *pflag.FlagSet) {
	fs.StringVarP(&f.file, "filename", "f", "", "A YAML file holding the Invitation (instead of the flags below).")
	fs.StringArrayVar(&f.clusterRoles, "clusterrole", nil, "A ClusterRole to grant, as NAME or NAME@NAMESPACE; repeatable.")
	fs.StringArrayVar(&f.roles, "role", nil, "A Role to grant, as NAME or NAME@NAMESPACE; repeatable.")
	fs.BoolVar(&f.clusterWide, "cluster-wide", false, "Grant the --clusterrole roles cluster-wide (ClusterRoleBindings).")
	fs.StringVar(&f.email, "email", "", "Bind the invitation to this verified email address.")
	fs.Int32Var(&f.maxUses, "max-uses", 1, "How many people may redeem it.")
	fs.DurationVar(&f.expiresAfter, "expires-after", 0, "Token lifetime, such as 72h (default: the manager's).")
	fs.DurationVar(&f.grantDuration, "grant-duration", 0, "How long each grant lasts after redemption, such as 720h.")
	fs.StringVar(&f.tokenType, "token-type", "", "Link, Code or Custom (default Link; Custom with --custom-token-secret).")
	fs.StringVar(&f.customSecret, "custom-token-secret", "", "For a Custom token: the Secret in the namespace whose key \"token\" holds it, labeled "+
		invitesv1alpha1.TokenLabel+"="+invitesv1alpha1.TokenLabelCustom+" (it may be created later).")
	fs.StringVar(&f.redirectURL, "redirect-url", "", "Where to send the person after redeeming (origins the manager allows).")
	fs.StringVar(&f.deliver, "deliver", "", "Send the token by email (to --email) or webhook (the manager's --delivery-webhook-url).")
	fs.BoolVar(&f.hideInviter, "hide-inviter", false, "Keep your name off the invitation's landing page.")
}

// registerCompletions offers the values of the flags that take one of a fixed set.
func (f *invitationFlags) registerCompletions(cmd *cobra.Command) {
	types := []string{string(invitesv1alpha1.TokenTypeLink), string(invitesv1alpha1.TokenTypeCode), string(invitesv1alpha1.TokenTypeCustom)}
	_ = cmd.RegisterFlagCompletionFunc("token-type", cobra.FixedCompletions(types, cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("deliver", cobra.FixedCompletions(deliveryChannels, cobra.ShellCompDirectiveNoFileComp))
}

// invitation builds the Invitation the flags describe, in the given namespace. A NAME
// given with -f renames the invitation the file holds.
func (f *invitationFlags) invitation(name, namespace string) (*invitesv1alpha1.Invitation, error) {
	if f.file != "" {
		inv, err := readInvitation(f.file, namespace)
		if err == nil && name != "" {
			inv.Name = name
		}
		return inv, err
	}
	spec, err := f.spec()
	if err != nil {
		return nil, err
	}
	inv := &invitesv1alpha1.Invitation{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace}, Spec: *spec}
	if name == "" {
		inv.GenerateName = "policy-check-"
	}
	return inv, nil
}

func (f *invitationFlags) spec() (*invitesv1alpha1.InvitationSpec, error) {
	tokenType, err := f.chosenTokenType()
	if err != nil {
		return nil, err
	}
	spec := &invitesv1alpha1.InvitationSpec{
		Email: f.email, MaxUses: f.maxUses, TokenType: tokenType, Grants: f.grants(),
		RedirectURL: f.redirectURL, HideInviter: f.hideInviter,
	}
	if len(spec.Grants) == 0 {
		return nil, fmt.Errorf("say what to grant: --clusterrole NAME[@NAMESPACE] or --role NAME[@NAMESPACE], or give -f FILE")
	}
	if f.customSecret != "" {
		spec.CustomTokenSecretRef = &invitesv1alpha1.SecretReference{Name: f.customSecret}
	}
	if spec.Delivery, err = f.delivery(); err != nil {
		return nil, err
	}
	if f.expiresAfter > 0 {
		spec.ExpiresAfter = &metav1.Duration{Duration: f.expiresAfter}
	}
	if f.grantDuration > 0 {
		spec.GrantDuration = &metav1.Duration{Duration: f.grantDuration}
	}
	return spec, nil
}

func (f *invitationFlags) grants() []invitesv1alpha1.Grant {
	var grants []invitesv1alpha1.Grant
	for _, spec := range f.clusterRoles {
		role, ns := splitAt(spec)
		grants = append(grants, invitesv1alpha1.Grant{ClusterRole: role, Namespace: ns, ClusterWide: f.clusterWide})
	}
	for _, spec := range f.roles {
		role, ns := splitAt(spec)
		grants = append(grants, invitesv1alpha1.Grant{Role: role, Namespace: ns})
	}
	return grants
}

// chosenTokenType reads --token-type in any letter case. Naming a custom token Secret is
// enough to ask for a Custom token; naming one for another type is a mistake worth
// pointing out before the API server does so in its own terms.
func (f *invitationFlags) chosenTokenType() (invitesv1alpha1.TokenType, error) {
	if f.tokenType == "" && f.customSecret != "" {
		return invitesv1alpha1.TokenTypeCustom, nil
	}
	if f.tokenType == "" {
		return invitesv1alpha1.TokenTypeLink, nil
	}
	for _, t := range []invitesv1alpha1.TokenType{invitesv1alpha1.TokenTypeLink, invitesv1alpha1.TokenTypeCode, invitesv1alpha1.TokenTypeCustom} {
		if !strings.EqualFold(f.tokenType, string(t)) {
			continue
		}
		if (t == invitesv1alpha1.TokenTypeCustom) != (f.customSecret != "") {
			return "", fmt.Errorf("--custom-token-secret goes with --token-type Custom, and only with it")
		}
		return t, nil
	}
	return "", fmt.Errorf("--token-type must be Link, Code or Custom, not %q", f.tokenType)
}

func (f *invitationFlags) delivery() (*invitesv1alpha1.Delivery, error) {
	switch strings.ToLower(f.deliver) {
	case "":
		return nil, nil
	case "email":
		if f.email == "" {
			return nil, fmt.Errorf("--deliver email needs --email: the address to send the link to")
		}
		return &invitesv1alpha1.Delivery{Email: true}, nil
	case "webhook":
		return &invitesv1alpha1.Delivery{Webhook: true}, nil
	}
	return nil, fmt.Errorf("--deliver must be email or webhook, not %q", f.deliver)
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
