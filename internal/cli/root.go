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
		Use:           "kubectl-invite",
		Short:         "Work with rolecall invitations",
		SilenceUsage:  true,
		SilenceErrors: true,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl invite"},
	}
	root.SetIn(streams.In)
	root.SetOut(streams.Out)
	root.SetErr(streams.ErrOut)
	config.AddFlags(root.PersistentFlags())
	root.AddCommand(newPolicyCommand(config, streams))
	return root
}

func newPolicyCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{Use: "policy", Short: "Ask what RoleGrantPolicies allow"}
	cmd.AddCommand(newPolicyCheckCommand(config, streams))
	return cmd
}
