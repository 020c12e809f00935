package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// tokenIDAnnotation is what the controller writes on a token Secret to say which token it
// holds. Status is written before the Secret, so for a moment after each issuance the
// Secret still holds the previous token; comparing the two keeps link from printing it.
const tokenIDAnnotation = invitesv1alpha1.TokenIDAnnotation

// pollInterval is how often link --wait looks again.
const pollInterval = 500 * time.Millisecond

// notIssuedError says the invitation has no token to print yet, and why.
type notIssuedError struct{ why string }

func (e notIssuedError) Error() string { return e.why }

func newLinkCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "link NAME",
		Short: "Print the link (or code) to hand to the invited person",
		Long: `Prints the link that redeems the invitation; for a Code token, the code and then the link.
They are read from the token Secret the invitation names (status.tokenSecretRef), so you
need the right to read Secrets in the namespace. The token is printed nowhere else.

Anyone who holds the link can redeem the invitation (unless it is for an --email address),
so hand it only to the person invited, over a channel you trust.

When no token is issued yet, link says why; --wait waits for it that long.`,
		Example: `  kubectl invite link bob -n team-a
  kubectl invite link workshop -n team-a --wait 30s`,
		Args:              cobra.ExactArgs(1),
		ValidArgsFunction: completeInvitationNames(config),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := connect(config, streams.ErrOut)
			if err != nil {
				return err
			}
			inv, secret, err := c.waitForToken(cmd.Context(), args[0], wait)
			if err != nil {
				return err
			}
			return printToken(streams.Out, inv, secret)
		},
	}
	cmd.Flags().DurationVar(&wait, "wait", 0, "How long to wait for the token to be issued, such as 30s.")
	return cmd
}

// waitForToken returns the invitation and its token Secret once the token is issued, or
// says why it is not, after waiting up to wait while waiting can help.
func (c *cluster) waitForToken(ctx context.Context, name string, wait time.Duration) (*invitesv1alpha1.Invitation, *corev1.Secret, error) {
	deadline := time.Now().Add(wait)
	for {
		inv, secret, err := c.issuedToken(ctx, name)
		var pending notIssuedError
		if !errors.As(err, &pending) {
			return inv, secret, err
		}
		if time.Now().Add(pollInterval).After(deadline) {
			if wait > 0 {
				err = fmt.Errorf("%w (waited %s)", err, wait)
			}
			return nil, nil, err
		}
		select {
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		case <-time.After(pollInterval):
		}
	}
}

// issuedToken reads the invitation and its current token Secret. An invitation that will
// never have a usable token again (revoked, expired...) is an error; one whose token is on
// its way is notIssuedError.
func (c *cluster) issuedToken(ctx context.Context, name string) (*invitesv1alpha1.Invitation, *corev1.Secret, error) {
	inv, err := c.invitation(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if err := redeemable(inv); err != nil {
		return nil, nil, err
	}
	secret := &corev1.Secret{}
	key := client.ObjectKey{Namespace: inv.Namespace, Name: inv.Status.TokenSecretRef.Name}
	if err := c.client.Get(ctx, key, secret); err != nil {
		return nil, nil, secretError(err, key)
	}
	if secret.Annotations[tokenIDAnnotation] != inv.Status.TokenID {
		return nil, nil, notIssuedError{fmt.Sprintf("the new token of invitation %q is being written to Secret %s", inv.Name, key.Name)}
	}
	return inv, secret, nil
}

// redeemable says why the invitation has no token to hand out, from its conditions, or
// nil when the token is issued and current.
func redeemable(inv *invitesv1alpha1.Invitation) error {
	ready := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationReadyCondition)
	switch {
	case inv.Status.ObservedGeneration != inv.Generation || ready == nil:
		return notIssuedError{fmt.Sprintf("invitation %q has not been processed by the rolecall controller yet", inv.Name)}
	case inv.Annotations[invitesv1alpha1.ResendAnnotation] != inv.Status.ObservedResend:
		return notIssuedError{fmt.Sprintf("invitation %q is getting a new token (resend)", inv.Name)}
	case inv.Status.Phase == invitesv1alpha1.PhasePending:
		return notIssuedError{fmt.Sprintf("invitation %q has no token yet: %s", inv.Name, tokenIssuedMessage(inv, ready))}
	case ready.Status != metav1.ConditionTrue || inv.Status.TokenSecretRef == nil:
		return notRedeemable(inv, ready)
	}
	return nil
}

// tokenIssuedMessage prefers the TokenIssued condition, which says what issuance waits for
// (a Custom token's Secret, a name conflict), over Ready's summary.
func tokenIssuedMessage(inv *invitesv1alpha1.Invitation, ready *metav1.Condition) string {
	if issued := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition); issued != nil && issued.Status != metav1.ConditionTrue {
		return issued.Reason + ": " + issued.Message
	}
	return ready.Reason + ": " + ready.Message
}

func notRedeemable(inv *invitesv1alpha1.Invitation, ready *metav1.Condition) error {
	err := fmt.Errorf("invitation %q cannot be redeemed (%s): %s", inv.Name, ready.Reason, ready.Message)
	if inv.Status.Phase == invitesv1alpha1.PhaseExpired {
		err = fmt.Errorf("%w (kubectl invite resend %s -n %s does that)", err, inv.Name, inv.Namespace)
	}
	return err
}

func secretError(err error, key client.ObjectKey) error {
	switch {
	case apierrors.IsForbidden(err):
		return fmt.Errorf("the link is in Secret %s in namespace %q, which you may not read: %s", key.Name, key.Namespace, apiMessage(err))
	case apierrors.IsNotFound(err):
		return notIssuedError{fmt.Sprintf("Secret %s, which will hold the token, does not exist yet", key.Name)}
	}
	return err
}

// printToken prints the link, alone on its line so that scripts can take it as it is; a
// code comes first, since that is what a person reads out.
func printToken(out io.Writer, inv *invitesv1alpha1.Invitation, secret *corev1.Secret) error {
	url := string(secret.Data[invitesv1alpha1.URLSecretKey])
	if inv.Spec.TokenType != invitesv1alpha1.TokenTypeCode {
		_, err := fmt.Fprintln(out, url)
		return err
	}
	_, err := fmt.Fprintf(out, "Code: %s\nLink: %s\n", secret.Data[invitesv1alpha1.TokenSecretKey], url)
	return err
}
