package redeem

import (
	"context"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/identity"
)

// Decline closes an email-bound invitation at the request of the person it is for, once
// their identity provider has vouched for that email address. Nobody can redeem it after.
func (s *Server) Decline(ctx context.Context, submitted string, user identity.User) (*invitesv1alpha1.Invitation, *Error) {
	inv, err := s.lookup(ctx, submitted)
	if err != nil {
		return nil, s.failure(err)
	}
	if inv.Spec.Email == "" {
		return nil, errNotDeclinable
	}
	if refusal := checkEmail(inv, user); refusal != nil {
		return nil, refusal
	}
	key := client.ObjectKeyFromObject(inv)
	entry, release := s.invitations.exclusive(key)
	defer release()
	entry.written = nil
	for range claimAttempts {
		inv = &invitesv1alpha1.Invitation{}
		if err := s.Live.Get(ctx, key, inv); err != nil {
			return nil, s.failure(err)
		}
		if refusal := usable(inv, s.Clock.Now()); refusal != nil {
			return nil, refusal
		}
		now := metav1.NewTime(s.Clock.Now())
		inv.Status.Phase = invitesv1alpha1.PhaseDeclined
		inv.Status.DeclinedBy, inv.Status.DeclinedAt = user.Username, &now
		err := s.Live.Status().Update(ctx, inv)
		switch {
		case err == nil:
			s.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "Declined", "Decline", "declined by %s", user.Username)
			return inv, nil
		case !apierrors.IsConflict(err):
			return nil, s.failure(err)
		}
	}
	return nil, errUnavailable
}
