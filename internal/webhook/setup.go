package webhook

import (
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// InviterStampPath is where the API server sends new invitations to have their inviter
// recorded (see the kubebuilder:webhook marker in invitation.go).
const InviterStampPath = "/mutate-invites-rolecall-dev-v1alpha1-invitation"

// Setup registers both webhooks with the manager's webhook server. self is the manager's
// own username: only the manager may take its finalizers off an invitation.
func Setup(mgr ctrl.Manager, authorizer *policy.Authorizer, self string) error {
	invitations := &InvitationWebhook{Authorizer: authorizer, Live: mgr.GetAPIReader(), Self: self}
	mgr.GetWebhookServer().Register(InviterStampPath, &webhook.Admission{Handler: &InviterStamp{}})
	err := builder.WebhookManagedBy(mgr, &invitesv1alpha1.Invitation{}).
		WithValidator(invitations).
		Complete()
	if err != nil {
		return err
	}
	return builder.WebhookManagedBy(mgr, &invitesv1alpha1.RoleGrantPolicy{}).
		WithValidator(RoleGrantPolicyWebhook{}).
		Complete()
}
