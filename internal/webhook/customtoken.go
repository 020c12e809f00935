package webhook

import (
	"context"
	"fmt"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// customTokenPath names spec.customTokenSecretRef in messages.
var customTokenPath = field.NewPath("spec", "customTokenSecretRef", "name")

// checkCustomToken lets an invitation take its token from a Secret only when the requester
// may read that Secret themselves, and only when the Secret belongs to no other
// invitation. rolecall reads the Secret with its own rights and hands the token to whoever
// the invitation says: without these checks an inviter could have someone else's token
// mailed to them.
func (w *InvitationWebhook) checkCustomToken(ctx context.Context, inv *invitesv1alpha1.Invitation, requester invitesv1alpha1.Inviter) error {
	ref := inv.Spec.CustomTokenSecretRef
	if inv.Spec.TokenType != invitesv1alpha1.TokenTypeCustom || ref == nil {
		return nil
	}
	allowed, err := w.Authorizer.Can(ctx, requester, authorizationv1.ResourceAttributes{
		Verb: "get", Resource: "secrets", Namespace: inv.Namespace, Name: ref.Name,
	})
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if !allowed {
		return apierrors.NewForbidden(invitationsResource, inv.Name, fmt.Errorf(
			"%s: %s may not get Secret %s in namespace %s: an invitation may only hand out a token its author may read",
			customTokenPath, requester.Username, ref.Name, inv.Namespace))
	}
	owner, err := w.tokenOwner(ctx, inv, ref.Name)
	if err != nil {
		return apierrors.NewInternalError(err)
	}
	if owner != "" {
		return invalid(inv, field.Invalid(customTokenPath, ref.Name, owner))
	}
	return nil
}

// tokenOwner says why the Secret belongs to another invitation, or "" when it does not:
// it is a token Secret rolecall issued, another Invitation owns it, or another Invitation
// takes its Custom token from it. The manager's cache holds every Secret labeled as a
// token, which is every Secret rolecall could read a token from.
func (w *InvitationWebhook) tokenOwner(ctx context.Context, inv *invitesv1alpha1.Invitation, name string) (string, error) {
	secret := &corev1.Secret{}
	err := w.Authorizer.Reader.Get(ctx, client.ObjectKey{Namespace: inv.Namespace, Name: name}, secret)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return "", err
	case secret.Labels[invitesv1alpha1.TokenLabel] == invitesv1alpha1.TokenLabelIssued:
		return "is a token Secret that rolecall issued for an invitation; name a Secret you made for this invitation", nil
	case ownedByOtherInvitation(secret, inv):
		return "belongs to another Invitation; name a Secret you made for this invitation", nil
	}
	var list invitesv1alpha1.InvitationList
	if err := w.Authorizer.Reader.List(ctx, &list, client.InNamespace(inv.Namespace)); err != nil {
		return "", err
	}
	for _, other := range list.Items {
		if other.Name != inv.Name && other.Spec.CustomTokenSecretRef != nil && other.Spec.CustomTokenSecretRef.Name == name {
			return fmt.Sprintf("is already the Custom token of Invitation %s: one token answers for one invitation", other.Name), nil
		}
	}
	return "", nil
}

func ownedByOtherInvitation(secret *corev1.Secret, inv *invitesv1alpha1.Invitation) bool {
	for _, ref := range secret.OwnerReferences {
		gv, err := schema.ParseGroupVersion(ref.APIVersion)
		if err == nil && gv.Group == invitesv1alpha1.GroupVersion.Group && ref.Kind == "Invitation" && !sameInvitation(ref, inv) {
			return true
		}
	}
	return false
}

// sameInvitation: on create the invitation has a UID already (admission sees the object
// as it will be stored), so a UID is enough to tell it from another.
func sameInvitation(ref metav1.OwnerReference, inv *invitesv1alpha1.Invitation) bool {
	return inv.UID != "" && ref.UID == inv.UID
}
