package webhook

import (
	"slices"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// TestWidenings lists, for each change, whether it needs the requester's authorization.
func TestWidenings(t *testing.T) {
	hour := &metav1.Duration{Duration: time.Hour}
	base := func() *invitesv1alpha1.Invitation {
		return &invitesv1alpha1.Invitation{Spec: invitesv1alpha1.InvitationSpec{
			Email: "a@example.com", Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}, MaxUses: 2,
			ExpiresAfter: hour, GrantDuration: hour, TokenType: invitesv1alpha1.TokenTypeLink,
			Upgrade: invitesv1alpha1.UpgradeAdd, RevokeGrants: true,
		}}
	}
	cases := []struct {
		name   string
		change func(*invitesv1alpha1.Invitation)
		want   string // "" when nothing widens
	}{
		{"nothing", func(*invitesv1alpha1.Invitation) {}, ""},
		{"revoked", func(i *invitesv1alpha1.Invitation) { i.Spec.Revoked = true }, ""},
		{"fewer uses", func(i *invitesv1alpha1.Invitation) { i.Spec.MaxUses = 1 }, ""},
		{"a shorter expiresAfter", func(i *invitesv1alpha1.Invitation) { i.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Minute} }, ""},
		{"a shorter grantDuration", func(i *invitesv1alpha1.Invitation) { i.Spec.GrantDuration = &metav1.Duration{Duration: time.Minute} }, ""},
		{"an unrelated label", func(i *invitesv1alpha1.Invitation) { i.Labels = map[string]string{"team": "a"} }, ""},
		{"another grant", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants[0].ClusterRole = "edit" }, "spec.grants"},
		{"an idpGroup", func(i *invitesv1alpha1.Invitation) { i.Spec.Grants[0].IDPGroup = "admins" }, "spec.grants"},
		{"another email", func(i *invitesv1alpha1.Invitation) { i.Spec.Email = "b@example.com" }, "spec.email"},
		{"no email", func(i *invitesv1alpha1.Invitation) { i.Spec.Email = "" }, "spec.email"},
		{"more uses", func(i *invitesv1alpha1.Invitation) { i.Spec.MaxUses = 3 }, "spec.maxUses"},
		{"a longer expiresAfter", func(i *invitesv1alpha1.Invitation) { i.Spec.ExpiresAfter = &metav1.Duration{Duration: 2 * time.Hour} }, expiresAfterPath},
		{"the longer default expiresAfter", func(i *invitesv1alpha1.Invitation) { i.Spec.ExpiresAfter = nil }, expiresAfterPath},
		{"permanent grants", func(i *invitesv1alpha1.Invitation) { i.Spec.GrantDuration = nil }, "spec.grantDuration"},
		{"another token type", func(i *invitesv1alpha1.Invitation) { i.Spec.TokenType = invitesv1alpha1.TokenTypeCode }, tokenTypePath},
		{"a custom token Secret", func(i *invitesv1alpha1.Invitation) {
			i.Spec.CustomTokenSecretRef = &invitesv1alpha1.SecretReference{Name: "s"}
		}, customTokenRefPath},
		{"Replace", func(i *invitesv1alpha1.Invitation) { i.Spec.Upgrade = invitesv1alpha1.UpgradeReplace }, "spec.upgrade"},
		{"mail delivery", func(i *invitesv1alpha1.Invitation) { i.Spec.Delivery = &invitesv1alpha1.Delivery{Email: true} }, "spec.delivery"},
		{"a redirect", func(i *invitesv1alpha1.Invitation) { i.Spec.RedirectURL = "https://example.net/" }, "spec.redirectURL"},
		{"a hidden inviter", func(i *invitesv1alpha1.Invitation) { i.Spec.HideInviter = true }, "spec.hideInviter"},
		{"grants kept after revocation", func(i *invitesv1alpha1.Invitation) { i.Spec.RevokeGrants = false }, "spec.revokeGrants"},
		{"a resend", func(i *invitesv1alpha1.Invitation) {
			i.Annotations = map[string]string{invitesv1alpha1.ResendAnnotation: "now"}
		}, resendPath},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			changed := base()
			c.change(changed)
			got := widenings(base(), changed, 72*time.Hour)
			if c.want == "" && len(got) > 0 || c.want != "" && !slices.Equal(got, []string{c.want}) {
				t.Errorf("widenings = %v, want [%s]", got, c.want)
			}
		})
	}
}
