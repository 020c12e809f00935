package webhook

import (
	"net/mail"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// MaxResendLength bounds the resend annotation's value: status.observedResend stores it,
// and a longer value would make every status write fail, leaving the invitation stuck.
const MaxResendLength = 256

// maxLocalPartLength is the longest local part (before the @) the mail standards allow.
const maxLocalPartLength = 64

// validateInvitation checks what the schema cannot: that the email is an address mail can
// be sent to, and that the resend annotation fits where it is recorded. Only what the
// update changes is checked (oldInv is nil on create), so that an invitation stored
// before a check existed can still be revoked or deleted.
func validateInvitation(oldInv, inv *invitesv1alpha1.Invitation) field.ErrorList {
	var errs field.ErrorList
	if oldInv == nil || oldInv.Spec.Email != inv.Spec.Email {
		errs = append(errs, validateEmail(inv.Spec.Email, field.NewPath("spec", "email"))...)
	}
	if oldInv == nil || resendChanged(oldInv, inv) {
		errs = append(errs, validateResend(inv.Annotations, field.NewPath("metadata", "annotations"))...)
	}
	return errs
}

// validateEmail accepts only a bare address (alice@example.com) as net/mail reads it: no
// display name, no angle brackets, no comments, and a local part mail servers accept.
func validateEmail(email string, fldPath *field.Path) field.ErrorList {
	if email == "" {
		return nil
	}
	addr, err := mail.ParseAddress(email)
	switch {
	case err != nil:
		return field.ErrorList{field.Invalid(fldPath, email, "must be an email address such as alice@example.com: "+err.Error())}
	case addr.Name != "" || addr.Address != email:
		return field.ErrorList{field.Invalid(fldPath, email, "must be a bare email address such as alice@example.com, without a name, brackets or comments")}
	case strings.LastIndex(email, "@") > maxLocalPartLength:
		return field.ErrorList{field.TooLong(fldPath.Key("local part"), email[:strings.LastIndex(email, "@")], maxLocalPartLength)}
	}
	return nil
}

func validateResend(annotations map[string]string, fldPath *field.Path) field.ErrorList {
	value := annotations[invitesv1alpha1.ResendAnnotation]
	if len(value) <= MaxResendLength {
		return nil
	}
	return field.ErrorList{field.TooLong(fldPath.Key(invitesv1alpha1.ResendAnnotation), "", MaxResendLength)}
}
