// Package webhook holds rolecall's admission webhooks: who an invitation's inviter is, and
// whether they may grant what it offers.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/metrics"
	"github.com/rolecall/rolecall/internal/policy"
)

// +kubebuilder:webhook:path=/mutate-invites-rolecall-dev-v1alpha1-invitation,mutating=true,failurePolicy=fail,sideEffects=None,groups=invites.rolecall.dev,resources=invitations,verbs=create,versions=v1alpha1,name=minvitation.invites.rolecall.dev,admissionReviewVersions=v1
// +kubebuilder:webhook:path=/validate-invites-rolecall-dev-v1alpha1-invitation,mutating=false,failurePolicy=fail,sideEffects=None,groups=invites.rolecall.dev,resources=invitations,verbs=create;update,versions=v1alpha1,name=vinvitation.invites.rolecall.dev,admissionReviewVersions=v1

// +kubebuilder:rbac:groups=authorization.k8s.io,resources=subjectaccessreviews,verbs=create
// +kubebuilder:rbac:groups="",resources=namespaces,verbs=get;list;watch

// InvitationWebhook stamps the inviter on new invitations and lets through only those a
// RoleGrantPolicy (or the inviter's own RBAC rights) allows.
type InvitationWebhook struct {
	Authorizer *policy.Authorizer
}

var (
	_ admission.Handler                                = &InviterStamp{}
	_ admission.Validator[*invitesv1alpha1.Invitation] = &InvitationWebhook{}
)

// InviterStamp records who is creating the invitation. It answers with a single JSON patch
// that adds spec.inviter, rather than re-encoding the whole object the way a typed
// defaulter does: that would rewrite every field whose encoding differs from what the
// client sent (expiresAfter "72h" comes back "72h0m0s"), and a GitOps tool applying the
// same manifest again would then see a change. A client-supplied inviter is left as it is,
// so that validation can refuse it if it is not the requester.
type InviterStamp struct{}

// Handle implements admission.Handler.
func (s *InviterStamp) Handle(_ context.Context, req admission.Request) admission.Response {
	var sent struct {
		Spec struct {
			Inviter *invitesv1alpha1.Inviter `json:"inviter"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(req.Object.Raw, &sent); err != nil {
		return admission.Errored(http.StatusBadRequest, err)
	}
	if sent.Spec.Inviter != nil {
		return admission.Allowed("")
	}
	inviter := InviterFromUserInfo(req.UserInfo)
	return admission.Patched("", jsonpatch.NewOperation("add", "/spec/inviter", inviter))
}

// ValidateCreate allows the invitation if its inviter is the requester and may grant it.
func (w *InvitationWebhook) ValidateCreate(ctx context.Context, inv *invitesv1alpha1.Invitation) (admission.Warnings, error) {
	requester, err := requesterFrom(ctx)
	if err != nil {
		return nil, err
	}
	if inv.Spec.Inviter == nil || !equality.Semantic.DeepEqual(*inv.Spec.Inviter, requester) {
		return nil, invalid(inv, field.Forbidden(field.NewPath("spec", "inviter"),
			"is set by rolecall to the user who creates the invitation; leave it empty"))
	}
	decision, err := w.authorize(ctx, inv, requester)
	if err != nil {
		return nil, err
	}
	// A dry run is someone asking "would this be allowed?" (kubectl invite policy check):
	// tell them by what.
	if req, _ := admission.RequestFromContext(ctx); req.DryRun != nil && *req.DryRun {
		return admission.Warnings{decision.Message(requester)}, nil
	}
	return nil, nil
}

// ValidateUpdate re-authorizes an invitation whose offer changes. The person changing it
// must be allowed to offer the new terms, and so must the original inviter, whose name the
// invitation keeps. Revoking and other changes that offer nothing new pass.
func (w *InvitationWebhook) ValidateUpdate(ctx context.Context, oldInv, inv *invitesv1alpha1.Invitation) (admission.Warnings, error) {
	if !offerChanged(oldInv, inv) {
		return nil, nil
	}
	requester, err := requesterFrom(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := w.authorize(ctx, inv, requester); err != nil {
		return nil, err
	}
	if inv.Spec.Inviter != nil && inv.Spec.Inviter.Username != requester.Username {
		_, err = w.authorize(ctx, inv, *inv.Spec.Inviter)
	}
	return nil, err
}

// ValidateDelete allows every deletion: removing an invitation grants nothing.
func (w *InvitationWebhook) ValidateDelete(context.Context, *invitesv1alpha1.Invitation) (admission.Warnings, error) {
	return nil, nil
}

// authorize returns the decision when the inviter may offer the invitation, and a
// Forbidden error that explains every refusal when not.
func (w *InvitationWebhook) authorize(ctx context.Context, inv *invitesv1alpha1.Invitation, inviter invitesv1alpha1.Inviter) (policy.Decision, error) {
	decision, err := w.Authorizer.Authorize(ctx, inv, inviter)
	if err != nil {
		return decision, apierrors.NewInternalError(fmt.Errorf("evaluating RoleGrantPolicies: %w", err))
	}
	log := logf.FromContext(ctx).WithValues("invitation", inv.Namespace+"/"+inv.Name, "inviter", inviter.Username)
	if !decision.Allowed {
		log.Info("invitation denied by policy", "candidates", decision.Candidates)
		metrics.PolicyDenials.WithLabelValues("admission").Inc()
		return decision, apierrors.NewForbidden(invitesv1alpha1.GroupVersion.WithResource("invitations").GroupResource(), inv.Name,
			fmt.Errorf("%s may not offer these grants: %s", inviter.Username, decision.Message(inviter)))
	}
	log.V(1).Info("invitation allowed", "allowedBy", decision.AllowedBy)
	return decision, nil
}

// offerChanged says whether an update changes what the invitation offers or to whom.
// Lowering maxUses offers less and needs no new authorization; raising it does.
func offerChanged(oldInv, inv *invitesv1alpha1.Invitation) bool {
	o, n := oldInv.Spec, inv.Spec
	return !equality.Semantic.DeepEqual(o.Grants, n.Grants) ||
		o.Email != n.Email || n.MaxUses > o.MaxUses ||
		!equality.Semantic.DeepEqual(o.ExpiresAfter, n.ExpiresAfter) ||
		!equality.Semantic.DeepEqual(o.GrantDuration, n.GrantDuration) ||
		o.TokenType != n.TokenType
}

func requesterFrom(ctx context.Context) (invitesv1alpha1.Inviter, error) {
	req, err := admission.RequestFromContext(ctx)
	if err != nil {
		return invitesv1alpha1.Inviter{}, apierrors.NewInternalError(err)
	}
	return InviterFromUserInfo(req.UserInfo), nil
}

// InviterFromUserInfo records an authenticated user as an inviter.
func InviterFromUserInfo(u authenticationv1.UserInfo) invitesv1alpha1.Inviter {
	inviter := invitesv1alpha1.Inviter{Username: u.Username, UID: u.UID, Groups: u.Groups}
	if len(u.Extra) > 0 {
		inviter.Extra = make(map[string]invitesv1alpha1.ExtraValue, len(u.Extra))
		for k, v := range u.Extra {
			inviter.Extra[k] = invitesv1alpha1.ExtraValue(v)
		}
	}
	return inviter
}

func invalid(inv *invitesv1alpha1.Invitation, errs ...*field.Error) error {
	return apierrors.NewInvalid(invitesv1alpha1.GroupVersion.WithKind("Invitation").GroupKind(), inv.Name, errs)
}
