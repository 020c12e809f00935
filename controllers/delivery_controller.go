package controllers

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/metrics"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/token"
)

// DeliveryReconciler sends each token once, by the channel spec.delivery asks for, and
// records the outcome in the Delivered condition and status.deliveredAt. A new token (a
// resend) clears that record, which is what makes it send again; re-applying the same
// Invitation changes nothing and sends nothing.
//
// The record is written after the send succeeds. A manager that dies in between sends the
// same link twice: a duplicate mail is the lesser evil next to a lost one.
//
// Deliveries are bounded per invitation and per recipient (Limits): a resend that comes too
// soon waits, with a Delivered=False condition (reason Throttled) that says until when, and
// a wake-up at that moment. The bound is counted from status.recentDeliveries, which outlives
// a restart, and from what this process sent itself (a delivery.Ledger), which whoever may
// write an invitation's status, or delete the invitation, cannot erase.
type DeliveryReconciler struct {
	client.Client
	// APIReader confirms the latest status before a success is recorded after a conflict.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// Mail and Webhook are the configured channels; nil when the manager has none.
	Mail, Webhook delivery.Sender
	// MaxAttempts is how many failed attempts end in DeliveryFailed.
	MaxAttempts int32
	// Backoff is the wait after the first failure; it doubles with each failure after that.
	Backoff time.Duration
	// Sealer tells a token rolecall issued from one someone wrote into status or a Secret:
	// only a sealed token, read from the Secret rolecall owns, is ever sent.
	Sealer *seal.Sealer
	// PublicURL is the redemption server's external base URL; links are built from it,
	// never read from a Secret that someone else may have written.
	PublicURL string
	// Limits bound deliveries per invitation and per recipient; zero means
	// delivery.DefaultLimits.
	Limits delivery.Limits

	// ledger remembers what this process delivered, for Limits.
	ledger delivery.Ledger

	// notBefore holds, per invitation, when the next attempt is due, in wall-clock time like
	// the RequeueAfter that wakes it. It lives in memory: after a leader change the next
	// attempt may come early, which is harmless.
	notBefore sync.Map
}

// Reconcile delivers the current token if it has not been delivered yet.
func (r *DeliveryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	inv := &invitesv1alpha1.Invitation{}
	if err := r.Get(ctx, req.NamespacedName, inv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !needsDelivery(inv) {
		return ctrl.Result{}, nil
	}
	// The cache may not show this controller's own last record yet: sending on its word
	// would send the same link twice. The decision to send is made on a live read.
	if err := r.APIReader.Get(ctx, req.NamespacedName, inv); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !needsDelivery(inv) {
		return ctrl.Result{}, nil
	}
	if wait := r.untilDue(inv); wait > 0 {
		return ctrl.Result{RequeueAfter: wait}, nil
	}
	sender := r.sender(inv)
	if sender == nil {
		return ctrl.Result{}, r.recordNotConfigured(ctx, inv)
	}
	hold, err := r.hold(ctx, inv)
	if err != nil {
		return ctrl.Result{}, err
	}
	if !hold.Until.IsZero() {
		return r.recordThrottled(ctx, inv, sender.Channel(), hold)
	}
	invite, ready, err := r.invite(ctx, inv)
	if err != nil || !ready {
		// Not ready: the token Secret does not hold the current token yet; its own watch
		// event brings the invitation back.
		return ctrl.Result{}, err
	}
	sendCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	sendErr := sender.Send(sendCtx, invite)
	if sendErr == nil {
		metrics.Deliveries.WithLabelValues(sender.Channel(), "sent").Inc()
		sentAt := metav1.NewTime(r.Clock.Now().Truncate(time.Second))
		// Remembered before status is written: a status write that fails must not free the bound.
		r.ledger.Record(string(inv.UID), recipientKey(inv), sentAt.Time, r.Limits.Window)
		return ctrl.Result{}, r.recordSent(ctx, inv, sender.Channel(), sentAt)
	}
	logf.FromContext(ctx).Info("delivery failed", "channel", sender.Channel(), "error", sendErr.Error())
	return r.recordFailure(ctx, inv, sender.Channel(), sendErr)
}

// needsDelivery: a channel is asked for, the token is live, and it was neither delivered
// nor given up on.
func needsDelivery(inv *invitesv1alpha1.Invitation) bool {
	if inv.DeletionTimestamp != nil || channelWanted(inv) == "" || inv.Status.Phase != invitesv1alpha1.PhaseActive {
		return false
	}
	cond := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition)
	return cond == nil || (cond.Status != metav1.ConditionTrue && cond.Reason != invitesv1alpha1.InvitationDeliveryFailedReason)
}

func channelWanted(inv *invitesv1alpha1.Invitation) string {
	switch d := inv.Spec.Delivery; {
	case d == nil:
		return ""
	case d.Email:
		return "email"
	case d.Webhook:
		return "webhook"
	}
	return ""
}

func (r *DeliveryReconciler) sender(inv *invitesv1alpha1.Invitation) delivery.Sender {
	if channelWanted(inv) == "email" {
		return r.Mail
	}
	return r.Webhook
}

func (r *DeliveryReconciler) untilDue(inv *invitesv1alpha1.Invitation) time.Duration {
	due, ok := r.notBefore.Load(attemptKey(inv))
	if !ok {
		return 0
	}
	return time.Until(due.(time.Time))
}

// attemptKey changes with the token, so a resend is never held back by the old one's backoff.
func attemptKey(inv *invitesv1alpha1.Invitation) string {
	return string(inv.UID) + "/" + inv.Status.TokenID
}

// invite reads the current token from its Secret. ready is false while the Secret lags
// behind status (status is written first; see tokenPlan), and for anything rolecall did
// not issue: the Secret is the one rolecall owns under its own name (never a name status
// gives), its token must be the sealed one, and the link is built here, so neither a
// status edit nor a Secret edit can make rolecall mail a token or link of someone else's.
func (r *DeliveryReconciler) invite(ctx context.Context, inv *invitesv1alpha1.Invitation) (delivery.Invite, bool, error) {
	if !r.Sealer.TokenSealed(inv) {
		return delivery.Invite{}, false, nil
	}
	secret := &corev1.Secret{}
	key := types.NamespacedName{Namespace: inv.Namespace, Name: tokenSecretName(inv)}
	if err := r.Get(ctx, key, secret); err != nil {
		return delivery.Invite{}, false, client.IgnoreNotFound(err)
	}
	value := string(secret.Data[invitesv1alpha1.TokenSecretKey])
	if !metav1.IsControlledBy(secret, inv) || r.Sealer.TokenHash(value) != inv.Status.TokenHash {
		return delivery.Invite{}, false, nil
	}
	invite := delivery.Invite{
		Name: inv.Name, Namespace: inv.Namespace, Email: inv.Spec.Email,
		Grants: describeGrants(inv), URL: token.URL(r.PublicURL, value),
		ExpiresAt: inv.Status.ExpiresAt.Time,
	}
	if inv.Spec.TokenType == invitesv1alpha1.TokenTypeCode {
		invite.Code = value
	}
	// Named even when spec.hideInviter hides the inviter from the landing page: a message
	// that does not say who sent it is the company's sender lent to anyone (see delivery.Invite).
	if inv.Spec.Inviter != nil {
		invite.Inviter = inv.Spec.Inviter.Username
	}
	if inv.Spec.Upgrade == invitesv1alpha1.UpgradeReplace {
		invite.Replaces = bindings.ReplaceScopes(inv)
	}
	return invite, true, nil
}

// describeGrants says what each grant gives, in words for the invited person.
func describeGrants(inv *invitesv1alpha1.Invitation) []string {
	out := make([]string, 0, len(inv.Spec.Grants))
	for _, g := range inv.Spec.Grants {
		out = append(out, g.Describe(inv.Namespace))
	}
	return out
}

func (r *DeliveryReconciler) recordSent(ctx context.Context, inv *invitesv1alpha1.Invitation, channel string, now metav1.Time) error {
	message := "the link was sent by " + channel
	if channel == "email" {
		message += " to " + inv.Spec.Email
	}
	tokenID := inv.Status.TokenID
	// The mail is out: a conflict must not lose the record, or the next pass sends again.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		return r.patchDelivery(ctx, inv, func(latest *invitesv1alpha1.Invitation) {
			// Counted even when a resend replaced the token meanwhile: the mail went out.
			latest.Status.RecentDeliveries = r.appendDelivery(latest.Status.RecentDeliveries, now)
			if latest.Status.TokenID == tokenID {
				latest.Status.DeliveredAt = &now
				setDelivered(latest, metav1.ConditionTrue, invitesv1alpha1.InvitationDeliveredReason, message)
			}
		}, "")
	})
	if err == nil {
		r.notBefore.Delete(attemptKey(inv))
		r.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "Delivered", "Deliver", "%s", message)
	}
	return err
}

func (r *DeliveryReconciler) recordFailure(ctx context.Context, inv *invitesv1alpha1.Invitation, channel string, sendErr error) (ctrl.Result, error) {
	var attempts int32
	var reason, message string
	// Every failed attempt is counted, even when a redemption wrote status meanwhile:
	// an attempt lost to a conflict would let the retries go on past MaxAttempts.
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		return r.patchDelivery(ctx, inv, func(latest *invitesv1alpha1.Invitation) {
			attempts = latest.Status.DeliveryAttempts + 1
			reason, message = r.failureOutcome(attempts, channel, sendErr)
			latest.Status.DeliveryAttempts = attempts
			setDelivered(latest, metav1.ConditionFalse, reason, message)
		}, inv.Status.TokenID)
	})
	if err != nil || reason == "" {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, reason, "Deliver", "%s", message)
	if reason == invitesv1alpha1.InvitationDeliveryFailedReason {
		metrics.Deliveries.WithLabelValues(channel, "failed").Inc()
		return ctrl.Result{}, nil
	}
	metrics.Deliveries.WithLabelValues(channel, "retrying").Inc()
	wait := r.Backoff << min(attempts-1, 10)
	r.notBefore.Store(attemptKey(inv), time.Now().Add(wait))
	return ctrl.Result{RequeueAfter: wait}, nil
}

// failureOutcome says whether to try again, and what to tell people either way.
func (r *DeliveryReconciler) failureOutcome(attempts int32, channel string, sendErr error) (reason, message string) {
	if attempts >= r.MaxAttempts || delivery.IsPermanent(sendErr) {
		return invitesv1alpha1.InvitationDeliveryFailedReason, fmt.Sprintf(
			"delivery by %s failed after %d attempt(s): %v; fix the cause, then `kubectl invite resend` issues and sends a new link",
			channel, attempts, sendErr)
	}
	return invitesv1alpha1.InvitationDeliveryRetryingReason,
		fmt.Sprintf("attempt %d of %d to deliver by %s failed: %v", attempts, r.MaxAttempts, channel, sendErr)
}

func (r *DeliveryReconciler) recordNotConfigured(ctx context.Context, inv *invitesv1alpha1.Invitation) error {
	flag := "--smtp-host and --smtp-from"
	if channelWanted(inv) == "webhook" {
		flag = "--delivery-webhook-url"
	}
	message := fmt.Sprintf("spec.delivery asks for %s delivery, but the manager has none configured (%s)", channelWanted(inv), flag)
	if c := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition); c != nil && c.Message == message {
		return nil
	}
	err := r.patchDelivery(ctx, inv, func(inv *invitesv1alpha1.Invitation) {
		setDelivered(inv, metav1.ConditionFalse, invitesv1alpha1.InvitationDeliveryNotConfiguredReason, message)
	}, inv.Status.TokenID)
	if err == nil {
		r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, invitesv1alpha1.InvitationDeliveryNotConfiguredReason, "Deliver", "%s", message)
	}
	return client.IgnoreNotFound(err)
}

// patchDelivery applies change to the latest invitation and writes status under an
// optimistic lock, unless the token changed meanwhile: then the record belongs to a token
// that no longer exists, and the new one gets its own delivery. An empty tokenID applies
// the change whatever the token.
func (r *DeliveryReconciler) patchDelivery(ctx context.Context, inv *invitesv1alpha1.Invitation, change func(*invitesv1alpha1.Invitation), tokenID string) error {
	latest := inv.DeepCopy()
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(inv), latest); err != nil {
		return err
	}
	if tokenID != "" && latest.Status.TokenID != tokenID {
		return nil
	}
	before := latest.DeepCopy()
	change(latest)
	return r.Status().Patch(ctx, latest, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}))
}

func setDelivered(inv *invitesv1alpha1.Invitation, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&inv.Status.Conditions, metav1.Condition{
		Type: invitesv1alpha1.InvitationDeliveredCondition, Status: status,
		Reason: reason, Message: message, ObservedGeneration: inv.Generation,
	})
}

// SetupWithManager watches invitations that ask for delivery, and their token Secrets.
func (r *DeliveryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 5
	}
	if r.Backoff <= 0 {
		r.Backoff = 10 * time.Second
	}
	if r.Limits == (delivery.Limits{}) {
		r.Limits = delivery.DefaultLimits
	}
	if err := indexRecipients(mgr); err != nil {
		return err
	}
	wantsDelivery := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		inv, ok := obj.(*invitesv1alpha1.Invitation)
		return !ok || channelWanted(inv) != ""
	})
	return ctrl.NewControllerManagedBy(mgr).
		For(&invitesv1alpha1.Invitation{}, builder.WithPredicates(wantsDelivery)).
		Owns(&corev1.Secret{}).
		Named("delivery").
		Complete(r)
}
