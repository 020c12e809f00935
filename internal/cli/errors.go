package cli

import (
	"errors"
	"fmt"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// ErrDenied means the invitation was, or would be, refused by policy or admission.
var ErrDenied = errors.New("denied")

// Explain is the line to print for an error a command returned, or "" when the command
// has already printed its answer (policy check's "no: ..."), so that it is not said twice.
func Explain(err error) string {
	var done answered
	if errors.As(err, &done) {
		return ""
	}
	return err.Error()
}

// answered wraps an error whose explanation the command has printed as its output.
type answered struct{ error }

func (a answered) Unwrap() error { return a.error }

// denial is a refusal in the API server's own words. The words are the useful part: a
// chain of "creating: posting: ..." prefixes would bury the webhook's reason.
type denial struct{ message string }

func (d denial) Error() string { return d.message }
func (d denial) Unwrap() error { return ErrDenied }

// apiMessage is the API server's text for err, without client-side decoration.
func apiMessage(err error) string {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return status.Status().Message
	}
	return err.Error()
}

// refusedOrError turns admission and authorization refusals into a denial and leaves
// other errors as they are.
func refusedOrError(err error) error {
	if apierrors.IsForbidden(err) || apierrors.IsInvalid(err) {
		return denial{message: apiMessage(err)}
	}
	return err
}

// notFound names the invitation and namespace, which the API server's text leaves out
// (it says `invitations.invites.rolecall.dev "x" not found`).
func notFound(err error, name, namespace string) error {
	if apierrors.IsNotFound(err) {
		return fmt.Errorf("invitation %q not found in namespace %q", name, namespace)
	}
	return err
}
