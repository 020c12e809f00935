package webhook

import (
	"time"

	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// The fields whose change ValidateUpdate treats specially, as widenings names them.
const (
	// resendPath names the resend annotation.
	resendPath         = "metadata.annotations[" + invitesv1alpha1.ResendAnnotation + "]"
	tokenTypePath      = "spec.tokenType"
	customTokenRefPath = "spec.customTokenSecretRef"
	expiresAfterPath   = "spec.expiresAfter"
)

// widenings lists the fields whose change offers more than before, to someone else, or for
// longer: each needs the requester to be allowed to offer the invitation as it will be.
// Changes that only take something away (revoking, fewer uses, a shorter life, adding an
// email) are not listed, so that anyone who may edit the invitation may narrow it.
func widenings(oldInv, inv *invitesv1alpha1.Invitation, defaultExpiresAfter time.Duration) []string {
	o, n := oldInv.Spec, inv.Spec
	var changed []string
	add := func(cond bool, field string) {
		if cond {
			changed = append(changed, field)
		}
	}
	add(!equality.Semantic.DeepEqual(o.Grants, n.Grants), "spec.grants")
	add(o.Email != "" && n.Email != o.Email, "spec.email")
	add(n.MaxUses > o.MaxUses, "spec.maxUses")
	add(effective(n.ExpiresAfter, defaultExpiresAfter) > effective(o.ExpiresAfter, defaultExpiresAfter), expiresAfterPath)
	add(longerGrants(o.GrantDuration, n.GrantDuration), "spec.grantDuration")
	add(o.TokenType != n.TokenType, tokenTypePath)
	add(!equality.Semantic.DeepEqual(o.CustomTokenSecretRef, n.CustomTokenSecretRef), customTokenRefPath)
	add(n.Upgrade == invitesv1alpha1.UpgradeReplace && o.Upgrade != invitesv1alpha1.UpgradeReplace, "spec.upgrade")
	add(turnedOn(deliversBy(o.Delivery, true), deliversBy(n.Delivery, true)) ||
		turnedOn(deliversBy(o.Delivery, false), deliversBy(n.Delivery, false)), "spec.delivery")
	add(o.RedirectURL != n.RedirectURL, "spec.redirectURL")
	add(turnedOn(o.HideInviter, n.HideInviter), "spec.hideInviter")
	add(o.RevokeGrants && !n.RevokeGrants, "spec.revokeGrants")
	add(resendChanged(oldInv, inv), resendPath)
	return changed
}

// resendChanged says whether the update asks for a new token (and a new life for it).
func resendChanged(oldInv, inv *invitesv1alpha1.Invitation) bool {
	return oldInv.Annotations[invitesv1alpha1.ResendAnnotation] != inv.Annotations[invitesv1alpha1.ResendAnnotation]
}

func effective(d *metav1.Duration, fallback time.Duration) time.Duration {
	if d == nil {
		return fallback
	}
	return d.Duration
}

// longerGrants: removing grantDuration makes grants permanent; raising it makes them last longer.
func longerGrants(o, n *metav1.Duration) bool {
	switch {
	case o == nil:
		return false
	case n == nil:
		return true
	default:
		return n.Duration > o.Duration
	}
}

func turnedOn(before, after bool) bool { return after && !before }

// deliversBy says whether delivery sends by email (or, with email false, by webhook).
func deliversBy(d *invitesv1alpha1.Delivery, email bool) bool {
	if d == nil {
		return false
	}
	if email {
		return d.Email
	}
	return d.Webhook
}
