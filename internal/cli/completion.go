package cli

import (
	"io"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// completionHelp adds to cobra's help how kubectl finds a plugin's completions, without
// which "kubectl invite get <Tab>" would complete nothing.
const completionHelp = `
kubectl completes a plugin's arguments (kubectl invite get <Tab>) by running an
executable named kubectl_complete-invite from your PATH. Create it once, next to
kubectl-invite:

  printf '#!/bin/sh\nexec kubectl-invite __complete "$@"\n' > kubectl_complete-invite
  chmod +x kubectl_complete-invite
`

// completeInvitationNames offers the names of the invitations in the namespace that -n or
// the kubeconfig selects. A failure offers nothing rather than an error: completion runs
// at every Tab press, where a message would only get in the way.
func completeInvitationNames(config *genericclioptions.ConfigFlags) cobra.CompletionFunc {
	return func(cmd *cobra.Command, args []string, toComplete string) ([]cobra.Completion, cobra.ShellCompDirective) {
		if len(args) > 0 {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		c, err := connect(config, io.Discard)
		if err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var list invitesv1alpha1.InvitationList
		if err := c.client.List(cmd.Context(), &list, client.InNamespace(c.namespace)); err != nil {
			return nil, cobra.ShellCompDirectiveNoFileComp
		}
		var names []cobra.Completion
		for _, inv := range list.Items {
			if strings.HasPrefix(inv.Name, toComplete) {
				names = append(names, cobra.CompletionWithDesc(inv.Name, string(inv.Status.Phase)))
			}
		}
		return names, cobra.ShellCompDirectiveNoFileComp
	}
}

// addCompletionHelp creates cobra's completion command now, rather than at Execute, so
// that its help can say how to hook the plugin into kubectl's completion.
func addCompletionHelp(root *cobra.Command) {
	root.InitDefaultCompletionCmd()
	for _, cmd := range root.Commands() {
		if cmd.Name() == "completion" {
			cmd.Long += completionHelp
		}
	}
}
