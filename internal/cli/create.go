package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/cli-runtime/pkg/printers"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// createOptions are create's flags beyond the invitation itself.
type createOptions struct {
	invitation invitationFlags
	output     outputFlag
	dryRun     string
}

func newCreateCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var opts createOptions
	cmd := &cobra.Command{
		Use:   "create NAME",
		Short: "Invite someone: create an invitation",
		Long: `Creates an Invitation in the namespace. rolecall's admission webhook records you as the
inviter and refuses grants that no RoleGrantPolicy (or your own RBAC rights) lets you offer;
kubectl invite policy check asks first without creating anything.

Once the controller has issued the token, kubectl invite link NAME prints the link (or the
code) to hand over, unless --deliver sends it for you.`,
		Example: `  kubectl invite create bob -n team-a --clusterrole edit --email bob@example.com
  kubectl invite create workshop -n team-a --clusterrole view --max-uses 30 --expires-after 8h --token-type Code
  kubectl invite create ops -n team-a --role deployer --clusterrole view@prod --grant-duration 720h
  kubectl invite create alice -n team-a --clusterrole edit --email alice@example.com --deliver email
  kubectl invite create bob -n team-a --clusterrole edit --dry-run=server -o yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return runCreate(cmd.Context(), config, streams, &opts, name)
		},
	}
	opts.invitation.bind(cmd.Flags())
	opts.invitation.registerCompletions(cmd)
	opts.output.bind(cmd)
	cmd.Flags().StringVar(&opts.dryRun, "dry-run", "none", `"server" sends the invitation through admission without storing it; "client" only prints it.`)
	_ = cmd.RegisterFlagCompletionFunc("dry-run", cobra.FixedCompletions([]string{"none", "server", "client"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runCreate(ctx context.Context, config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, opts *createOptions, name string) error {
	printer, err := opts.validate(name)
	if err != nil {
		return err
	}
	c, err := connect(config, streams.ErrOut)
	if err != nil {
		return err
	}
	inv, err := opts.invitation.invitation(name, c.namespace)
	if err != nil {
		return err
	}
	if opts.dryRun == "client" {
		return printCreated(streams.Out, printer, inv, "would be created (client dry run: not sent)")
	}
	if err := c.create(ctx, inv, opts.dryRun == "server"); err != nil {
		return err
	}
	if opts.dryRun == "server" {
		return printCreated(streams.Out, printer, inv, "would be created (server dry run: admitted, not stored)")
	}
	if err := printCreated(streams.Out, printer, inv, "created"); err != nil || printer != nil {
		return err
	}
	return nextSteps(streams.Out, inv)
}

// validate checks what can be checked without the cluster, and returns the -o printer.
func (opts *createOptions) validate(name string) (printers.ResourcePrinter, error) {
	if opts.dryRun != "none" && opts.dryRun != "server" && opts.dryRun != "client" {
		return nil, fmt.Errorf(`--dry-run must be "none", "server" or "client", not %q`, opts.dryRun)
	}
	if name == "" && opts.invitation.file == "" {
		return nil, fmt.Errorf("name the invitation: kubectl invite create NAME --clusterrole ROLE ..., or give -f FILE")
	}
	return opts.output.printer()
}

// create sends the invitation. The error, if any, is the API server's own text: a
// webhook's refusal is the answer the person needs, not a detail to wrap.
func (c *cluster) create(ctx context.Context, inv *invitesv1alpha1.Invitation, dryRun bool) error {
	var opts []client.CreateOption
	if dryRun {
		opts = append(opts, client.DryRunAll)
	}
	err := c.client.Create(ctx, inv, opts...)
	if apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("invitation %q already exists in namespace %q", inv.Name, inv.Namespace)
	}
	return refusedOrError(err)
}

func printCreated(out io.Writer, printer printers.ResourcePrinter, inv *invitesv1alpha1.Invitation, what string) error {
	if printer != nil {
		return printer.PrintObj(inv, out)
	}
	_, err := fmt.Fprintf(out, "invitation %q %s in namespace %q\n", inv.Name, what, inv.Namespace)
	return err
}

// nextSteps says how the token reaches the invited person, which depends on the token type
// and on delivery.
func nextSteps(out io.Writer, inv *invitesv1alpha1.Invitation) error {
	link := fmt.Sprintf("kubectl invite link %s -n %s --wait 30s", inv.Name, inv.Namespace)
	var steps string
	switch {
	case inv.Spec.TokenType == invitesv1alpha1.TokenTypeCustom && inv.Spec.CustomTokenSecretRef != nil:
		steps = fmt.Sprintf("Next: put the token in Secret %s (key %q, label %s=%s) if it is not there yet,\nthen hand out the link: %s\n",
			inv.Spec.CustomTokenSecretRef.Name, invitesv1alpha1.TokenSecretKey, invitesv1alpha1.TokenLabel, invitesv1alpha1.TokenLabelCustom, link)
	case inv.Spec.Delivery != nil && inv.Spec.Delivery.Email:
		steps = fmt.Sprintf("The link will be sent to %s once the token is issued; kubectl invite get %s -n %s shows how it goes.\n",
			inv.Spec.Email, inv.Name, inv.Namespace)
	case inv.Spec.Delivery != nil && inv.Spec.Delivery.Webhook:
		steps = fmt.Sprintf("The link will be posted to the delivery webhook once the token is issued; kubectl invite get %s -n %s shows how it goes.\n",
			inv.Name, inv.Namespace)
	case inv.Spec.TokenType == invitesv1alpha1.TokenTypeCode:
		steps = fmt.Sprintf("Next: hand over the code (and its link), which this prints once the token is issued:\n  %s\n", link)
	default:
		steps = fmt.Sprintf("Next: hand over the link, which this prints once the token is issued:\n  %s\n", link)
	}
	_, err := io.WriteString(out, steps)
	return err
}
