package cli

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/printers"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// none stands for an empty cell, as kubectl writes it.
const none = "<none>"

// outputFlag is -o for the commands that print invitations: a table by default, or the
// objects as YAML or JSON, managedFields left out as kubectl leaves them out.
type outputFlag struct{ format string }

func (o *outputFlag) bind(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&o.format, "output", "o", "", "Output format: yaml or json (default: a table).")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"yaml", "json"}, cobra.ShellCompDirectiveNoFileComp))
}

// printer is the printer -o asks for, or nil for the table. Commands ask for it before
// they change anything, so that a mistyped format never leaves a half-done command.
func (o *outputFlag) printer() (printers.ResourcePrinter, error) {
	if o.format == "" {
		return nil, nil
	}
	p, err := genericclioptions.NewJSONYamlPrintFlags().ToPrinter(o.format)
	if err != nil {
		return nil, err
	}
	// Objects read through a typed client carry no apiVersion and kind; the type setter
	// puts them back so the output can be applied or parsed as it is.
	return printers.NewTypeSetter(scheme).ToPrinter(p), nil
}

// printList prints invitations as one InvitationList, each item with its apiVersion and
// kind so that it stands on its own when taken out of the list.
func printList(p printers.ResourcePrinter, items []invitesv1alpha1.Invitation, out io.Writer) error {
	list := &invitesv1alpha1.InvitationList{Items: items}
	for i := range list.Items {
		list.Items[i].SetGroupVersionKind(invitesv1alpha1.GroupVersion.WithKind("Invitation"))
	}
	return p.PrintObj(list, out)
}

// printTable writes invitations as kubectl get would, with the namespace first when they
// come from more than one.
func printTable(out io.Writer, items []invitesv1alpha1.Invitation, withNamespace bool, now time.Time) error {
	w := printers.GetNewTabWriter(out)
	header := []string{"NAME", "PHASE", "GRANTS", "EMAIL", "USES", "EXPIRES", "AGE"}
	if withNamespace {
		header = append([]string{"NAMESPACE"}, header...)
	}
	if _, err := fmt.Fprintln(w, strings.Join(header, "\t")); err != nil {
		return err
	}
	for i := range items {
		row := tableRow(&items[i], now)
		if withNamespace {
			row = append([]string{items[i].Namespace}, row...)
		}
		if _, err := fmt.Fprintln(w, strings.Join(row, "\t")); err != nil {
			return err
		}
	}
	return w.Flush()
}

func tableRow(inv *invitesv1alpha1.Invitation, now time.Time) []string {
	uses := inv.Status.UsesSummary
	if uses == "" {
		// The controller has not written status yet; the counts are known anyway.
		uses = inv.SummarizeUses()
	}
	return []string{
		inv.Name,
		orNone(string(inv.Status.Phase)),
		orNone(inv.Status.GrantSummary),
		orNone(inv.Spec.Email),
		uses,
		expires(inv, now),
		duration.HumanDuration(now.Sub(inv.CreationTimestamp.Time)),
	}
}

// expires says when the token stops working, relative to now, which is what a person
// scanning the list wants to know.
func expires(inv *invitesv1alpha1.Invitation, now time.Time) string {
	at := inv.Status.ExpiresAt
	switch {
	case at == nil:
		return none
	case at.After(now):
		return "in " + duration.HumanDuration(at.Sub(now))
	default:
		return duration.HumanDuration(now.Sub(at.Time)) + " ago"
	}
}

func orNone(s string) string {
	if s == "" {
		return none
	}
	return s
}
