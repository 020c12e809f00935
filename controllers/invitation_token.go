package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/token"
)

const (
	tokenSecretSuffix = "-invitation-token"
	// tokenIDAnnotation on a token Secret records which token ID its token has, so a Secret
	// that lags behind status (a write lost in a crash) is recognised and replaced.
	tokenIDAnnotation   = invitesv1alpha1.TokenIDAnnotation
	tokenTypeAnnotation = invitesv1alpha1.TokenTypeAnnotation
	// secretConflictReason: a Secret with the token Secret's name exists and is not ours.
	secretConflictReason = "SecretConflict"
)

// errNotOurSecret means a Secret with the token Secret's name belongs to someone else; it
// will stay that way until a person acts, so it is reported, not retried.
var errNotOurSecret = errors.New("secret is not owned by this invitation")

// tokenPlan is what a reconcile pass will do to the token Secret once status is written.
//
// Status is written first, with an optimistic lock, and the Secret second. A pass working
// from a stale cached Invitation therefore fails its status write and touches no Secret:
// two passes can never both issue a token, and status never names a token the Secret
// does not hold for longer than a failed write takes to retry.
type tokenPlan struct {
	// secret is the current token Secret, if there is one.
	secret *corev1.Secret
	// issue is a new token to write; nil keeps the current one.
	issue *token.Token
	// rotated says the new token replaces one that may have been delivered.
	rotated bool
	// withdraw deletes the token Secret: a Custom token's source became unusable.
	withdraw bool
	// trusted says status holds token facts rolecall produced: a token issued in this pass,
	// or one whose seal verified. Only then does the controller seal status again.
	trusted bool
}

// tokenSecretName is "<invitation>-invitation-token", shortened with a hash when the
// invitation's name is too long to leave room for the suffix.
func tokenSecretName(inv *invitesv1alpha1.Invitation) string {
	name := inv.Name
	if len(name)+len(tokenSecretSuffix) > validation.DNS1123SubdomainMaxLength {
		sum := sha256.Sum256([]byte(name))
		name = name[:200] + "-" + hex.EncodeToString(sum[:5])
	}
	return name + tokenSecretSuffix
}

// planToken decides whether the invitation needs a new token and records the decision in
// status; applyToken carries it out after status is written.
func (r *InvitationReconciler) planToken(ctx context.Context, inv *invitesv1alpha1.Invitation) (tokenPlan, error) {
	if inv.Spec.Revoked || policyDenied(inv) {
		// A revoked or denied invitation keeps its Secret (the redemption server refuses it
		// anyway) but gets no new token.
		return tokenPlan{}, nil
	}
	secret, err := r.tokenSecret(ctx, inv)
	if errors.Is(err, errNotOurSecret) {
		setTokenNotIssued(inv, secretConflictReason, fmt.Sprintf(
			"Secret %s already exists and is not owned by this invitation; delete or rename it", tokenSecretName(inv)))
		return tokenPlan{}, nil
	}
	if err != nil {
		return tokenPlan{}, err
	}
	if inv.Spec.TokenType == invitesv1alpha1.TokenTypeCustom {
		return r.planCustomToken(ctx, inv, secret)
	}
	return r.planGeneratedToken(inv, secret)
}

// tokenSecret returns the invitation's token Secret, or nil when it has none. When the
// cache shows no Secret, or one that does not match status, the API server is asked
// before anything is replaced: the cache may simply not have caught up with a Secret
// written moments ago, and a needless rotation would break a link already delivered.
func (r *InvitationReconciler) tokenSecret(ctx context.Context, inv *invitesv1alpha1.Invitation) (*corev1.Secret, error) {
	key := client.ObjectKey{Namespace: inv.Namespace, Name: tokenSecretName(inv)}
	secret := &corev1.Secret{}
	err := r.Get(ctx, key, secret)
	if client.IgnoreNotFound(err) != nil {
		return nil, err
	}
	issued := inv.Status.TokenID != ""
	if issued && (err != nil || !matchesStatus(secret, inv)) {
		err = r.APIReader.Get(ctx, key, secret)
	}
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if !metav1.IsControlledBy(secret, inv) {
		return nil, errNotOurSecret
	}
	return secret, nil
}

// matchesStatus says the Secret holds the token status names, of the type spec asks for.
func matchesStatus(secret *corev1.Secret, inv *invitesv1alpha1.Invitation) bool {
	return inv.Status.TokenID != "" &&
		secret.Annotations[tokenIDAnnotation] == inv.Status.TokenID &&
		secret.Annotations[tokenTypeAnnotation] == string(inv.Spec.TokenType)
}

// planGeneratedToken issues a Link or Code token when there is none that rolecall sealed,
// when a resend was asked for (the resend annotation is part of the seal), or when the
// Secret does not hold the sealed token.
func (r *InvitationReconciler) planGeneratedToken(inv *invitesv1alpha1.Invitation, secret *corev1.Secret) (tokenPlan, error) {
	plan := tokenPlan{secret: secret}
	sealed := r.Sealer.TokenSealed(inv)
	if sealed && r.secretHoldsToken(secret, inv) {
		plan.trusted = true
		setTokenIssued(inv, tokenIssuedReason(inv), "the token is in Secret "+secret.Name)
		return plan, nil
	}
	at, ok := r.issueAt(inv, secret)
	if !ok {
		block(inv, &plan)
		return plan, nil
	}
	t, err := generate(inv.Spec.TokenType)
	if err != nil {
		return plan, err
	}
	plan.issue, plan.rotated, plan.trusted = &t, secret != nil, true
	r.recordIssued(inv, t, at)
	reason := invitesv1alpha1.InvitationTokenGeneratedReason
	if plan.rotated {
		reason = invitesv1alpha1.InvitationTokenRotatedReason
	}
	setTokenIssued(inv, reason, "a new token was issued into Secret "+tokenSecretName(inv))
	return plan, nil
}

// secretHoldsToken says the Secret is the one status names and holds the token whose hash
// status records: a Secret edited by someone else, or lost in a crash, is replaced.
func (r *InvitationReconciler) secretHoldsToken(secret *corev1.Secret, inv *invitesv1alpha1.Invitation) bool {
	return secret != nil && matchesStatus(secret, inv) &&
		r.Sealer.TokenHash(string(secret.Data[invitesv1alpha1.TokenSecretKey])) == inv.Status.TokenHash
}

// tokenIssuedReason keeps the reason of the last issuance while the token stays the same.
func tokenIssuedReason(inv *invitesv1alpha1.Invitation) string {
	if c := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationTokenIssuedCondition); c != nil && c.Status == metav1.ConditionTrue {
		return c.Reason
	}
	return invitesv1alpha1.InvitationTokenGeneratedReason
}

func generate(tokenType invitesv1alpha1.TokenType) (token.Token, error) {
	if tokenType == invitesv1alpha1.TokenTypeCode {
		return token.NewCode()
	}
	return token.NewLink()
}

// recordIssued notes a new token in status: its public ID, its keyed hash and when it was
// issued. Delivery starts over: the new token has not been sent to anyone yet. The seal is
// added once the expiry that follows from issuedAt is known (see sealToken).
func (r *InvitationReconciler) recordIssued(inv *invitesv1alpha1.Invitation, t token.Token, at time.Time) {
	// Whole seconds: what the API server stores, so the next pass computes the same expiry.
	issuedAt := metav1.NewTime(at.Truncate(time.Second))
	inv.Status.TokenID = t.ID
	inv.Status.TokenHash = r.Sealer.TokenHash(t.Value)
	inv.Status.TokenSecretRef = &invitesv1alpha1.ObjectReference{Name: tokenSecretName(inv)}
	inv.Status.IssuedAt = &issuedAt
	inv.Status.ObservedResend = inv.Annotations[invitesv1alpha1.ResendAnnotation]
	restartDelivery(inv)
}

// forgetToken clears the facts of a token that no longer works. When to the token had a
// life that rolecall sealed, its start stays, sealed again, so that a token issued later
// (a Custom token Secret that comes back) continues that life rather than starting anew.
func (r *InvitationReconciler) forgetToken(inv *invitesv1alpha1.Invitation, plan *tokenPlan) {
	own := r.Sealer.RecordSealedUnder(inv, inv.Annotations[invitesv1alpha1.ResendAnnotation]) && inv.Status.IssuedAt != nil
	inv.Status.TokenID, inv.Status.TokenHash, inv.Status.TokenSecretRef = "", "", nil
	if !own {
		inv.Status.TokenSeal, inv.Status.IssuedAt = "", nil
	}
	plan.trusted = own
}

// sealToken signs status's token record once this pass has derived it, when it is
// rolecall's own; a record someone else wrote stays unsealed, and its token does not redeem.
func (r *InvitationReconciler) sealToken(inv *invitesv1alpha1.Invitation, plan tokenPlan) {
	if plan.trusted {
		r.Sealer.SealToken(inv)
	}
}

// restartDelivery forgets that the token was delivered, so the delivery controller sends
// it (again), with a fresh count of attempts.
func restartDelivery(inv *invitesv1alpha1.Invitation) {
	inv.Status.DeliveredAt = nil
	inv.Status.DeliveryAttempts = 0
	meta.RemoveStatusCondition(&inv.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
}

// applyToken carries out the plan once status has been written.
func (r *InvitationReconciler) applyToken(ctx context.Context, inv *invitesv1alpha1.Invitation, plan tokenPlan) error {
	switch {
	case plan.withdraw && plan.secret != nil:
		return client.IgnoreNotFound(r.Delete(ctx, plan.secret))
	case plan.issue != nil:
		if err := r.saveTokenSecret(ctx, inv, plan.secret, *plan.issue); err != nil {
			return err
		}
		action := "a new token was issued"
		if plan.rotated {
			action = "the token was rotated; the previous one no longer works"
		}
		until := ""
		if inv.Status.ExpiresAt != nil {
			until = "; it can be redeemed until " + inv.Status.ExpiresAt.UTC().Format(time.RFC3339)
		}
		r.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "Issued", "IssueToken", "%s (token ID %s)%s", action, plan.issue.ID, until)
		return nil
	case plan.secret != nil:
		return r.refreshURL(ctx, plan.secret)
	}
	return nil
}

// saveTokenSecret writes the token and its URL into the invitation's Secret, creating it
// (owned by the invitation, labeled for the manager's Secret cache) when there is none.
func (r *InvitationReconciler) saveTokenSecret(ctx context.Context, inv *invitesv1alpha1.Invitation, secret *corev1.Secret, t token.Token) error {
	if secret != nil {
		secret = secret.DeepCopy()
		fillTokenSecret(secret, inv, t, r.PublicURL)
		return r.Update(ctx, secret)
	}
	secret = &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: inv.Namespace, Name: tokenSecretName(inv)}}
	if err := controllerutil.SetControllerReference(inv, secret, r.Scheme); err != nil {
		return err
	}
	fillTokenSecret(secret, inv, t, r.PublicURL)
	err := r.Create(ctx, secret)
	if !apierrors.IsAlreadyExists(err) {
		return err
	}
	// The cache had not seen a Secret written by an earlier pass. Status now names the new
	// token, so the Secret must hold it, provided the Secret is ours.
	existing := &corev1.Secret{}
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(secret), existing); err != nil {
		return err
	}
	if !metav1.IsControlledBy(existing, inv) {
		return errNotOurSecret
	}
	fillTokenSecret(existing, inv, t, r.PublicURL)
	return r.Update(ctx, existing)
}

func fillTokenSecret(secret *corev1.Secret, inv *invitesv1alpha1.Invitation, t token.Token, publicURL string) {
	if secret.Labels == nil {
		secret.Labels = map[string]string{}
	}
	secret.Labels[invitesv1alpha1.TokenLabel] = invitesv1alpha1.TokenLabelIssued
	if len(validation.IsValidLabelValue(inv.Name)) == 0 {
		secret.Labels[invitesv1alpha1.InvitationNameLabel] = inv.Name
	}
	if secret.Annotations == nil {
		secret.Annotations = map[string]string{}
	}
	secret.Annotations[tokenIDAnnotation] = t.ID
	secret.Annotations[tokenTypeAnnotation] = string(inv.Spec.TokenType)
	secret.Type = corev1.SecretTypeOpaque
	secret.Data = map[string][]byte{
		invitesv1alpha1.TokenSecretKey: []byte(t.Value),
		invitesv1alpha1.URLSecretKey:   []byte(token.URL(publicURL, t.Value)),
	}
}

// refreshURL rewrites the URL when the manager's --public-url changed since issuance.
func (r *InvitationReconciler) refreshURL(ctx context.Context, secret *corev1.Secret) error {
	want := token.URL(r.PublicURL, string(secret.Data[invitesv1alpha1.TokenSecretKey]))
	if string(secret.Data[invitesv1alpha1.URLSecretKey]) == want {
		return nil
	}
	secret = secret.DeepCopy()
	secret.Data[invitesv1alpha1.URLSecretKey] = []byte(want)
	return r.Update(ctx, secret)
}

func setTokenIssued(inv *invitesv1alpha1.Invitation, reason, message string) {
	meta.SetStatusCondition(&inv.Status.Conditions, metav1.Condition{
		Type: invitesv1alpha1.InvitationTokenIssuedCondition, Status: metav1.ConditionTrue,
		Reason: reason, Message: message, ObservedGeneration: inv.Generation,
	})
}

func setTokenNotIssued(inv *invitesv1alpha1.Invitation, reason, message string) {
	meta.SetStatusCondition(&inv.Status.Conditions, metav1.Condition{
		Type: invitesv1alpha1.InvitationTokenIssuedCondition, Status: metav1.ConditionFalse,
		Reason: reason, Message: message, ObservedGeneration: inv.Generation,
	})
}
