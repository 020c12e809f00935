package cli

import (
	"context"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

func newGetCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var output outputFlag
	cmd := &cobra.Command{
		Use:   "get NAME",
		Short: "Show one invitation",
		Long: `Shows one invitation as a table row, or the whole object with -o yaml|json. The token
is never part of it: kubectl invite link NAME prints the link.`,
		Example: `  kubectl invite get bob -n team-a
  kubectl invite get bob -o yaml`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInvitationNames(config),
		RunE: func(cmd *cobra.Command, args []string) error {
			printer, err := output.printer()
			if err != nil {
				return err
			}
			c, err := connect(config, streams.ErrOut)
			if err != nil {
				return err
			}
			inv, err := c.invitation(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if printer != nil {
				return printer.PrintObj(inv, streams.Out)
			}
			return printTable(streams.Out, []invitesv1alpha1.Invitation{*inv}, false, time.Now())
		},
	}
	output.bind(cmd)
	return cmd
}

// invitation reads one invitation from the API server, with a not-found error that says
// where it looked.
func (c *cluster) invitation(ctx context.Context, name string) (*invitesv1alpha1.Invitation, error) {
	inv := &invitesv1alpha1.Invitation{}
	if err := c.client.Get(ctx, client.ObjectKey{Namespace: c.namespace, Name: name}, inv); err != nil {
		return nil, notFound(err, name, c.namespace)
	}
	return inv, nil
}
