package cli

import (
	"fmt"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

func newPolicyCheckCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var flags invitationFlags
	cmd := &cobra.Command{
		Use:   "check [NAME]",
		Short: "Say whether an inviter could create an invitation, and why",
		Long: `Asks the API server whether the invitation would be admitted, without creating it
(a server-side dry run through rolecall's admission webhook). Use --as and --as-group to
ask on someone else's behalf (you need the right to impersonate them).

Exit status: 0 when allowed, 2 when denied, 1 when the question could not be asked.`,
		Example: `  kubectl invite policy check -n team-a --clusterrole edit --email new@example.com
  kubectl invite policy check -n team-a --clusterrole admin --as lee --as-group team-leads
  kubectl invite policy check -f invitation.yaml`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			name := ""
			if len(args) == 1 {
				name = args[0]
			}
			return runPolicyCheck(cmd, config, streams, &flags, name)
		},
	}
	flags.bind(cmd.Flags())
	flags.registerCompletions(cmd)
	return cmd
}

func runPolicyCheck(cmd *cobra.Command, config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, flags *invitationFlags, name string) error {
	namespace, _, err := config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return err
	}
	inv, err := flags.invitation(name, namespace)
	if err != nil {
		return err
	}
	restConfig, err := config.ToRESTConfig()
	if err != nil {
		return err
	}
	warnings := &warningCollector{}
	restConfig.WarningHandler = warnings
	c, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		return err
	}
	who := "you"
	if config.Impersonate != nil && *config.Impersonate != "" {
		who = *config.Impersonate
	}
	err = c.Create(cmd.Context(), inv, client.DryRunAll)
	switch {
	case err == nil:
		_, _ = fmt.Fprintf(streams.Out, "yes: %s may create this invitation in namespace %s (%s)\n", who, inv.Namespace, warnings.String())
		return nil
	case apierrors.IsForbidden(err) || apierrors.IsInvalid(err):
		_, _ = fmt.Fprintf(streams.Out, "no: %s\n", apiMessage(err))
		return answered{ErrDenied}
	default:
		return fmt.Errorf("asking the API server: %w", err)
	}
}

// warningCollector keeps the warnings the API server sends, where rolecall's webhook says
// which policy allowed a dry run.
type warningCollector struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warningCollector) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, text)
}

func (w *warningCollector) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.msgs) == 0 {
		return "allowed"
	}
	return strings.Join(w.msgs, "; ")
}
