package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

func newResendCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "resend NAME",
		Short: "Issue a new token (the current one stops working) and deliver it again",
		Long: `Asks the controller for a new token by setting the annotation ` + invitesv1alpha1.ResendAnnotation + `
to the current time. The current link or code stops working as soon as the new token is
issued, and an expired invitation gets a fresh lifetime. When the invitation is delivered
by email or webhook, the new link is sent again; otherwise kubectl invite link prints it.
(A Custom token is not replaced, since it is yours: it is only delivered again.)`,
		Example:           `  kubectl invite resend bob -n team-a`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInvitationNames(config),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(config, streams.ErrOut)
			if err != nil {
				return err
			}
			inv, err := c.resend(cmd.Context(), args[0], time.Now())
			if err != nil {
				return err
			}
			return printResent(streams.Out, inv)
		},
	}
	return cmd
}

// resend writes the resend annotation. Every new value rotates the token exactly once, so
// the time (to the nanosecond) makes each resend count, even two in the same second.
func (c *cluster) resend(ctx context.Context, name string, now time.Time) (*invitesv1alpha1.Invitation, error) {
	inv, err := c.invitation(ctx, name)
	if err != nil {
		return nil, err
	}
	// The controller issues no token for these, so the annotation would only promise one.
	switch {
	case inv.Spec.Revoked:
		return nil, fmt.Errorf("invitation %q is revoked, which cannot be undone; create a new invitation instead", name)
	case inv.Status.Phase == invitesv1alpha1.PhaseDeclined:
		return nil, fmt.Errorf("invitation %q was declined by the invited person; create a new invitation if that was a mistake", name)
	}
	patch, err := json.Marshal(map[string]any{"metadata": map[string]any{
		"annotations": map[string]string{invitesv1alpha1.ResendAnnotation: now.UTC().Format(time.RFC3339Nano)},
	}})
	if err != nil {
		return nil, err
	}
	return inv, c.patch(ctx, name, patch)
}

func printResent(out io.Writer, inv *invitesv1alpha1.Invitation) error {
	what := "gets a new token: the current one stops working"
	if inv.Spec.TokenType == invitesv1alpha1.TokenTypeCustom {
		// rolecall did not make a Custom token, so it cannot replace it; changing the
		// token in its Secret does.
		what = "keeps its Custom token (change it in Secret " + inv.Spec.CustomTokenSecretRef.Name + ")"
	}
	next := fmt.Sprintf("Hand over the new link: kubectl invite link %s -n %s --wait 30s", inv.Name, inv.Namespace)
	switch {
	case inv.Spec.Delivery != nil && inv.Spec.Delivery.Email:
		next = "It will be sent again by email to " + inv.Spec.Email + "."
	case inv.Spec.Delivery != nil && inv.Spec.Delivery.Webhook:
		next = "It will be posted to the delivery webhook again."
	case inv.Spec.TokenType == invitesv1alpha1.TokenTypeCustom:
		next = fmt.Sprintf("kubectl invite link %s -n %s prints its link.", inv.Name, inv.Namespace)
	}
	_, err := fmt.Fprintf(out, "invitation %q in namespace %q %s. %s\n", inv.Name, inv.Namespace, what, next)
	return err
}
