// Package cli is the `kubectl invite` plugin.
package cli

import (
	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// NewRootCommand is `kubectl invite`. Kubeconfig, context, namespace and impersonation
// flags (--as, --as-group) work as they do for kubectl.
func NewRootCommand(streams genericiooptions.IOStreams) *cobra.Command {
	config := genericclioptions.NewConfigFlags(true)
	root := &cobra.Command{
		Use:   "kubectl-invite",
		Short: "Work with rolecall invitations",
		Long: `Invite people into the cluster: an invitation offers roles through a link or a code, and
whoever redeems it gets exactly those roles, bound to the username the API server knows
them by.`,
		Example: `  kubectl invite create bob -n team-a --clusterrole edit --email bob@example.com
  kubectl invite link bob -n team-a --wait 30s
  kubectl invite list -A
  kubectl invite redeem https://invite.example.com/i/AbCdEf.GhIjKlMnOp`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl invite"},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	config.AddFlags(root.PersistentFlags())
	root.AddCommand(
		newCreateCommand(config, streams),
		newListCommand(config, streams),
		newGetCommand(config, streams),
		newLinkCommand(config, streams),
		newRevokeCommand(config, streams),
		newResendCommand(config, streams),
		newRedeemCommand(config, streams),
		newPolicyCommand(config, streams),
	)
	addCompletionHelp(root)
	return root
}

func newPolicyCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Ask what RoleGrantPolicies allow"}
	cmd.AddCommand(newPolicyCheckCommand(config, streams))
	return cmd
}
