package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/metrics"
)

// recipientIndex indexes invitations that were delivered recently by their recipient's
// delivery.RecipientKey, so that deliveries to one person are counted across invitations.
const recipientIndex = "rolecall.delivery.recipient"

func indexRecipients(mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(context.Background(), &invitesv1alpha1.Invitation{}, recipientIndex,
		func(obj client.Object) []string {
			inv, ok := obj.(*invitesv1alpha1.Invitation)
			if !ok || len(inv.Status.RecentDeliveries) == 0 || recipientKey(inv) == "" {
				return nil
			}
			return []string{recipientKey(inv)}
		})
}

func recipientKey(inv *invitesv1alpha1.Invitation) string {
	if inv.Spec.Email == "" {
		return ""
	}
	return delivery.RecipientKey(inv.Spec.Email)
}

// hold says whether the limits hold the invitation's next delivery back, counting what
// status records (this invitation's and every other one's to the same recipient) and what
// this process remembers sending.
func (r *DeliveryReconciler) hold(ctx context.Context, inv *invitesv1alpha1.Invitation) (delivery.Hold, error) {
	own := delivery.Times(recorded(inv), r.ledger.ByInvitation(string(inv.UID)))
	var toRecipient []time.Time
	if key := recipientKey(inv); key != "" {
		var list invitesv1alpha1.InvitationList
		if err := r.List(ctx, &list, client.MatchingFields{recipientIndex: key}); err != nil {
			return delivery.Hold{}, err
		}
		// The live read of inv is newer than the cache's copy.
		records := [][]delivery.Sent{recorded(inv), r.ledger.ByRecipient(key)}
		for i := range list.Items {
			records = append(records, recorded(&list.Items[i]))
		}
		toRecipient = delivery.Times(records...)
	}
	return r.Limits.NextAllowed(r.Clock.Now(), own, toRecipient), nil
}

// recorded lists the deliveries the invitation's status records.
func recorded(inv *invitesv1alpha1.Invitation) []delivery.Sent {
	out := make([]delivery.Sent, 0, len(inv.Status.RecentDeliveries))
	for _, t := range inv.Status.RecentDeliveries {
		out = append(out, delivery.Sent{Invitation: string(inv.UID), At: t.Time})
	}
	return out
}

// appendDelivery adds a delivery to status.recentDeliveries and drops those that no longer
// count, keeping the list within its schema bound.
func (r *DeliveryReconciler) appendDelivery(list []metav1.Time, at metav1.Time) []metav1.Time {
	out := make([]metav1.Time, 0, len(list)+1)
	for _, t := range list {
		if at.Sub(t.Time) < r.Limits.Window {
			out = append(out, t)
		}
	}
	out = append(out, at)
	return out[max(0, len(out)-delivery.MaxPerInvitation):]
}

// recordThrottled says in the Delivered condition until when the delivery waits, once per
// hold, and wakes the invitation at that moment.
func (r *DeliveryReconciler) recordThrottled(ctx context.Context, inv *invitesv1alpha1.Invitation, channel string, hold delivery.Hold) (ctrl.Result, error) {
	message := fmt.Sprintf("delivery by %s waits until %s: %s", channel, hold.Until.UTC().Format(time.RFC3339), hold.Reason)
	wake := ctrl.Result{RequeueAfter: hold.Until.Sub(r.Clock.Now())}
	if c := meta.FindStatusCondition(inv.Status.Conditions, invitesv1alpha1.InvitationDeliveredCondition); c != nil &&
		c.Reason == invitesv1alpha1.InvitationDeliveryThrottledReason && c.Message == message {
		return wake, nil
	}
	err := r.patchDelivery(ctx, inv, func(latest *invitesv1alpha1.Invitation) {
		setDelivered(latest, metav1.ConditionFalse, invitesv1alpha1.InvitationDeliveryThrottledReason, message)
	}, inv.Status.TokenID)
	if err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	metrics.Deliveries.WithLabelValues(channel, "throttled").Inc()
	r.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, invitesv1alpha1.InvitationDeliveryThrottledReason, "Deliver", "%s", message)
	return wake, nil
}
