package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/token"
)

// planCustomToken takes a user-supplied token once its Secret exists and the token is
// strong enough. Until then the invitation stays Pending and the condition says what it
// waits for; the Secret may legitimately arrive later (GitOps ordering).
func (r *InvitationReconciler) planCustomToken(ctx context.Context, inv *invitesv1alpha1.Invitation, secret *corev1.Secret) (tokenPlan, error) {
	plan := tokenPlan{secret: secret}
	value, reason, message, err := r.readCustomToken(ctx, inv)
	if err == nil && reason == "" {
		reason, message, err = r.checkTokenUnique(ctx, inv, value)
	}
	if err != nil {
		return plan, err
	}
	if reason != "" {
		// The source went away or became unusable: the copied token must stop working too.
		setTokenNotIssued(inv, reason, message)
		r.forgetToken(inv, &plan)
		plan.withdraw = true
		return plan, nil
	}
	source := "the token from Secret " + inv.Spec.CustomTokenSecretRef.Name + " is in Secret " + tokenSecretName(inv)
	sealed := r.Sealer.TokenSealed(inv)
	if sealed && r.Sealer.TokenHash(value) == inv.Status.TokenHash && r.secretHoldsToken(secret, inv) {
		plan.trusted = true
		setTokenIssued(inv, invitesv1alpha1.InvitationCustomTokenReadReason, source)
		return plan, nil
	}
	// A Custom token carries no ID of its own; a random one stands in for lookups and support.
	id, err := token.NewID()
	if err != nil {
		return plan, err
	}
	at, ok := r.issueAt(inv, secret)
	if !ok {
		block(inv, &plan)
		return plan, nil
	}
	plan.issue, plan.trusted = &token.Token{Kind: token.Custom, ID: id, Value: value}, true
	r.recordIssued(inv, *plan.issue, at)
	setTokenIssued(inv, invitesv1alpha1.InvitationCustomTokenReadReason, source)
	return plan, nil
}

// checkTokenUnique refuses a Custom token that another invitation already holds: a token
// must find exactly one invitation, or someone who may read one invitation's token could
// redeem the other's grants with it.
func (r *InvitationReconciler) checkTokenUnique(ctx context.Context, inv *invitesv1alpha1.Invitation, value string) (reason, message string, err error) {
	var holders invitesv1alpha1.InvitationList
	if err := r.List(ctx, &holders, client.MatchingFields{seal.TokenHashIndex: r.Sealer.TokenHash(value)}); err != nil {
		return "", "", err
	}
	for i := range holders.Items {
		if other := &holders.Items[i]; other.UID != inv.UID && r.Sealer.TokenSealed(other) {
			return invitesv1alpha1.InvitationCustomTokenInUseReason, fmt.Sprintf(
				"the token in Secret %s is another invitation's token; every invitation needs a token of its own",
				inv.Spec.CustomTokenSecretRef.Name), nil
		}
	}
	return "", "", nil
}

// readCustomToken returns the canonical token from the user's Secret, or the reason and
// message that say why it cannot be used yet.
func (r *InvitationReconciler) readCustomToken(ctx context.Context, inv *invitesv1alpha1.Invitation) (value, reason, message string, err error) {
	ref := inv.Spec.CustomTokenSecretRef
	key := client.ObjectKey{Namespace: inv.Namespace, Name: ref.Name}
	source := &corev1.Secret{}
	err = r.Get(ctx, key, source)
	if client.IgnoreNotFound(err) != nil {
		return "", "", "", err
	}
	// The manager's cache holds the token Secrets rolecall issued too: only a Secret the
	// user labeled as a Custom token, and that belongs to no invitation, is a source. The
	// message is the same whether a Secret of that name exists or not, so the condition
	// tells readers of the invitation nothing about Secrets they may not see.
	if err != nil || source.Labels[invitesv1alpha1.TokenLabel] != invitesv1alpha1.TokenLabelCustom || metav1.GetControllerOf(source) != nil {
		return "", invitesv1alpha1.InvitationCustomTokenMissingReason, customSecretMissingMessage(ref.Name), nil
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

func customSecretMissingMessage(name string) string {
	return fmt.Sprintf("waiting for Secret %s with key %q and label %s=%s, belonging to no invitation",
		name, invitesv1alpha1.TokenSecretKey, invitesv1alpha1.TokenLabel, invitesv1alpha1.TokenLabelCustom)
}
