package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/token"
)

// planCustomToken takes a user-supplied token once its Secret exists and the token is
// strong enough. Until then the invitation stays Pending and the condition says what it
// waits for; the Secret may legitimately arrive later (GitOps ordering).
func (r *InvitationReconciler) planCustomToken(ctx context.Context, inv *invitesv1alpha1.Invitation, secret *corev1.Secret) (tokenPlan, error) {
	plan := tokenPlan{secret: secret}
	value, reason, message, err := r.readCustomToken(ctx, inv)
	if err != nil {
		return plan, err
	}
	if reason != "" {
		// The source went away or became unusable: the copied token must stop working too.
		setTokenNotIssued(inv, reason, message)
		inv.Status.TokenID, inv.Status.TokenSecretRef, inv.Status.IssuedAt = "", nil, nil
		plan.withdraw = true
		return plan, nil
	}
	source := "the token from Secret " + inv.Spec.CustomTokenSecretRef.Name + " is in Secret " + tokenSecretName(inv)
	if secret != nil && matchesStatus(secret, inv) && string(secret.Data[invitesv1alpha1.TokenSecretKey]) == value {
		if resendRequested(inv) {
			// rolecall cannot rotate a token it did not make; a resend only delivers it again.
			inv.Status.ObservedResend = inv.Annotations[invitesv1alpha1.ResendAnnotation]
			restartDelivery(inv)
		}
		setTokenIssued(inv, invitesv1alpha1.InvitationCustomTokenReadReason, source)
		return plan, nil
	}
	// A Custom token carries no ID of its own; a random one stands in for lookups and support.
	id, err := token.NewID()
	if err != nil {
		return plan, err
	}
	plan.issue = &token.Token{Kind: token.Custom, ID: id, Value: value}
	recordIssued(inv, id, r.Clock.Now())
	setTokenIssued(inv, invitesv1alpha1.InvitationCustomTokenReadReason, source)
	return plan, nil
}

// readCustomToken returns the canonical token from the user's Secret, or the reason and
// message that say why it cannot be used yet.
func (r *InvitationReconciler) readCustomToken(ctx context.Context, inv *invitesv1alpha1.Invitation) (value, reason, message string, err error) {
	ref := inv.Spec.CustomTokenSecretRef
	key := client.ObjectKey{Namespace: inv.Namespace, Name: ref.Name}
	source := &corev1.Secret{}
	err = r.Get(ctx, key, source)
	if apierrors.IsNotFound(err) {
		exists := r.customSecretExists(ctx, key)
		reason = invitesv1alpha1.InvitationCustomTokenMissingReason
		if exists {
			reason = invitesv1alpha1.InvitationCustomTokenUnlabeledReason
		}
		return "", reason, customSecretMissingMessage(ref.Name, exists), nil
	}
	if err != nil {
		return "", "", "", err
	}
	raw, ok := source.Data[invitesv1alpha1.TokenSecretKey]
	if !ok {
		return "", invitesv1alpha1.InvitationCustomTokenMissingReason,
			fmt.Sprintf("waiting for key %q in Secret %s", invitesv1alpha1.TokenSecretKey, ref.Name), nil
	}
	t, parseErr := token.Parse(string(raw))
	if parseErr != nil {
		return "", invitesv1alpha1.InvitationCustomTokenWeakReason, fmt.Sprintf(
			"the token in Secret %s must be 1 to %d printable characters without spaces", ref.Name, token.MaxLength), nil
	}
	if bits := token.EstimateBits(t.Value); bits < token.MinCustomBits {
		return "", invitesv1alpha1.InvitationCustomTokenWeakReason, fmt.Sprintf(
			"the token in Secret %s is too easy to guess (about %.0f bits, at least %d required); use 24 or more random characters, for example from `openssl rand -base64 24`",
			ref.Name, bits, token.MinCustomBits), nil
	}
	return t.Value, "", "", nil
}

// customSecretExists asks the API server, past the label-selected cache, so that a Secret
// missing only its label can be told apart from one that does not exist.
func (r *InvitationReconciler) customSecretExists(ctx context.Context, key client.ObjectKey) bool {
	return r.APIReader.Get(ctx, key, &corev1.Secret{}) == nil
}

func customSecretMissingMessage(name string, exists bool) string {
	if exists {
		return fmt.Sprintf("Secret %s exists but lacks the label %s=%s that lets rolecall see it; add the label",
			name, invitesv1alpha1.TokenLabel, invitesv1alpha1.TokenLabelCustom)
	}
	return fmt.Sprintf("waiting for Secret %s with key %q and label %s=%s",
		name, invitesv1alpha1.TokenSecretKey, invitesv1alpha1.TokenLabel, invitesv1alpha1.TokenLabelCustom)
}
