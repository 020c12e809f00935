package webhook

import (
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// Setup registers both webhooks with the manager's webhook server.
func Setup(mgr ctrl.Manager, authorizer *policy.Authorizer) error {
	invitations := &InvitationWebhook{Authorizer: authorizer}
	err := builder.WebhookManagedBy(mgr, &invitesv1alpha1.Invitation{}).
		WithDefaulter(invitations).
		WithValidator(invitations).
		Complete()
	if err != nil {
		return err
	}
	return builder.WebhookManagedBy(mgr, &invitesv1alpha1.RoleGrantPolicy{}).
		WithValidator(RoleGrantPolicyWebhook{}).
		Complete()
}
