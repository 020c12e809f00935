package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

func newListCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var (
		output        outputFlag
		allNamespaces bool
	)
	cmd := &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List invitations",
		Long: `Lists the invitations in the namespace (or in every namespace with -A): their phase,
what they grant, whom they are for, how many of their uses are spent and when their token
expires. -o yaml|json prints them as an InvitationList.`,
		Example: `  kubectl invite list -n team-a
  kubectl invite list -A
  kubectl invite list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			printer, err := output.printer()
			if err != nil {
				return err
			}
			c, err := connect(config, streams.ErrOut)
			if err != nil {
				return err
			}
			var opts []client.ListOption
			if !allNamespaces {
				opts = append(opts, client.InNamespace(c.namespace))
			}
			var list invitesv1alpha1.InvitationList
			if err := c.client.List(cmd.Context(), &list, opts...); err != nil {
				return err
			}
			if printer != nil {
				return printList(printer, list.Items, streams.Out)
			}
			if len(list.Items) == 0 {
				return noInvitations(streams, c.namespace, allNamespaces)
			}
			return printTable(streams.Out, list.Items, allNamespaces, time.Now())
		},
	}
	output.bind(cmd)
	cmd.Flags().BoolVarP(&allNamespaces, "all-namespaces", "A", false, "List the invitations in every namespace.")
	return cmd
}

// noInvitations says so on stderr, as kubectl does, so that a script reading stdout sees
// an empty table rather than a sentence.
func noInvitations(streams genericiooptions.IOStreams, namespace string, allNamespaces bool) error {
	where := fmt.Sprintf("in namespace %q", namespace)
	if allNamespaces {
		where = "in any namespace"
	}
	_, err := fmt.Fprintf(streams.ErrOut, "No invitations found %s.\n", where)
	return err
}
