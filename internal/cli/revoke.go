package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

func newRevokeCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var grants bool
	cmd := &cobra.Command{
		Use:   "revoke NAME",
		Short: "Stop an invitation from being redeemed (cannot be undone)",
		Long: `Revokes the invitation: its token stops working at once, for everyone. Whoever already
redeemed it keeps the roles it granted, unless --grants removes them too (also later:
revoking again with --grants removes them then).

Revocation cannot be undone. To invite again, create a new invitation.`,
		Example: `  kubectl invite revoke bob -n team-a
  kubectl invite revoke workshop -n team-a --grants`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInvitationNames(config),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(config, streams.ErrOut)
			if err != nil {
				return err
			}
			if err := c.revoke(cmd.Context(), args[0], grants); err != nil {
				return err
			}
			return printRevoked(streams.Out, args[0], c.namespace, grants)
		},
	}
	cmd.Flags().BoolVar(&grants, "grants", false, "Also remove the roles the invitation has granted.")
	return cmd
}

// revoke sets spec.revoked, and spec.revokeGrants with grants. A merge patch sets only
// these fields, so it cannot undo a change someone else made meanwhile.
func (c *cluster) revoke(ctx context.Context, name string, grants bool) error {
	spec := map[string]bool{"revoked": true}
	if grants {
		spec["revokeGrants"] = true
	}
	patch, err := json.Marshal(map[string]any{"spec": spec})
	if err != nil {
		return err
	}
	return c.patch(ctx, name, patch)
}

// patch applies a JSON merge patch to the named invitation.
func (c *cluster) patch(ctx context.Context, name string, patch []byte) error {
	inv := &invitesv1alpha1.Invitation{}
	inv.Name, inv.Namespace = name, c.namespace
	err := c.client.Patch(ctx, inv, client.RawPatch(types.MergePatchType, patch))
	return refusedOrError(notFound(err, name, c.namespace))
}

func printRevoked(out io.Writer, name, namespace string, grants bool) error {
	what := fmt.Sprintf("The roles it already granted stay; kubectl invite revoke %s -n %s --grants removes them.", name, namespace)
	if grants {
		what = "The roles it granted are being removed."
	}
	_, err := fmt.Fprintf(out, "invitation %q in namespace %q revoked: its token no longer works. %s\n", name, namespace, what)
	return err
}
