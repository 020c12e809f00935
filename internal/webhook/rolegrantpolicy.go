package webhook

import (
	"context"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// +kubebuilder:webhook:path=/validate-invites-rolecall-dev-v1alpha1-rolegrantpolicy,mutating=false,failurePolicy=fail,sideEffects=None,groups=invites.rolecall.dev,resources=rolegrantpolicies,verbs=create;update,versions=v1alpha1,name=vrolegrantpolicy.invites.rolecall.dev,admissionReviewVersions=v1

// RoleGrantPolicyWebhook refuses policies that could never be used: rules that do not
// compile, selectors that do not parse, limits that contradict the rest.
type RoleGrantPolicyWebhook struct{}

var _ admission.Validator[*invitesv1alpha1.RoleGrantPolicy] = RoleGrantPolicyWebhook{}

// ValidateCreate checks a new policy, and warns when it is probably wider than meant.
func (RoleGrantPolicyWebhook) ValidateCreate(_ context.Context, rgp *invitesv1alpha1.RoleGrantPolicy) (admission.Warnings, error) {
	return policy.Warnings(rgp), validatePolicy(rgp)
}

// ValidateUpdate checks a changed policy, and warns when it is probably wider than meant.
func (RoleGrantPolicyWebhook) ValidateUpdate(_ context.Context, _, rgp *invitesv1alpha1.RoleGrantPolicy) (admission.Warnings, error) {
	return policy.Warnings(rgp), validatePolicy(rgp)
}

// ValidateDelete allows every deletion.
func (RoleGrantPolicyWebhook) ValidateDelete(context.Context, *invitesv1alpha1.RoleGrantPolicy) (admission.Warnings, error) {
	return nil, nil
}

func validatePolicy(rgp *invitesv1alpha1.RoleGrantPolicy) error {
	errs := policy.Compile(rgp).Errors
	if len(errs) == 0 {
		return nil
	}
	return apierrors.NewInvalid(invitesv1alpha1.GroupVersion.WithKind("RoleGrantPolicy").GroupKind(), rgp.Name, errs)
}
