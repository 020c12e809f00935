// Package webhook holds rolecall's admission webhooks: who an invitation's inviter is, and
// whether they may grant what it offers.
package webhook

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	jsonpatch "gomodules.xyz/jsonpatch/v2"
	authenticationv1 "k8s.io/api/authentication/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"
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
	// Live reads from the API server, not the cache: the per-inviter quota counts through it.
	Live client.Reader
	// Self is the manager's own username, the only one that may remove its finalizers.
	Self string

	quota quota
}

// invitationsResource names Invitations in Forbidden errors.
var invitationsResource = invitesv1alpha1.GroupVersion.WithResource("invitations").GroupResource()

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
	if errs := validateInvitation(nil, inv); len(errs) > 0 {
		return nil, invalid(inv, errs...)
	}
	if err := w.checkCustomToken(ctx, inv, requester); err != nil {
		return nil, err
	}
	decision, err := w.authorizeCreate(ctx, inv, requester)
	if err != nil {
		return nil, err
	}
	// A dry run is someone asking "would this be allowed?" (kubectl invite policy check):
	// tell them by what.
	if isDryRun(ctx) {
		return admission.Warnings{decision.Message(requester)}, nil
	}
	return nil, nil
}

// authorizeCreate authorizes a new invitation. When a policy limits how many open
// invitations an inviter may have, the inviter's creates are admitted one at a time and
// counted live, so that creates sent in parallel cannot all pass the same count.
func (w *InvitationWebhook) authorizeCreate(ctx context.Context, inv *invitesv1alpha1.Invitation, requester invitesv1alpha1.Inviter) (policy.Decision, error) {
	now := time.Now()
	// The token's life starts with the invitation's; the API server has set
	// creationTimestamp (to the second) by the time validating admission runs.
	issued := inv.CreationTimestamp.Time
	if issued.IsZero() {
		issued = now.Truncate(time.Second)
	}
	adm := policy.Admission{TokenIssuedAt: issued}
	limited, err := w.Authorizer.LimitsActiveInvitations(ctx)
	if err != nil {
		return policy.Decision{}, apierrors.NewInternalError(err)
	}
	if !limited {
		return w.authorize(ctx, inv, requester, adm, false)
	}
	iq, unlock := w.quota.lock(requester.Username)
	defer unlock()
	count, err := w.quota.count(ctx, w.Live, iq, inv, requester.Username, now)
	if err != nil {
		return policy.Decision{}, apierrors.NewInternalError(fmt.Errorf("counting the inviter's open invitations: %w", err))
	}
	adm.ActiveInvitations = &count
	decision, err := w.authorize(ctx, inv, requester, adm, false)
	if err == nil && !isDryRun(ctx) {
		iq.admit(inv, now)
	}
	return decision, err
}

// ValidateUpdate re-authorizes an invitation whose update offers more, to someone else, or
// for longer (see widenings). The requester must be allowed to offer the invitation as it
// will be, judged by who they are in this request: an inviter who has since lost a group
// cannot resend or extend on the strength of the groups recorded at creation. The original
// inviter, whose name the invitation keeps, must still be allowed too. Revoking and other
// changes that offer nothing new pass.
func (w *InvitationWebhook) ValidateUpdate(ctx context.Context, oldInv, inv *invitesv1alpha1.Invitation) (admission.Warnings, error) {
	if errs := validateInvitation(oldInv, inv); len(errs) > 0 {
		return nil, invalid(inv, errs...)
	}
	if err := w.keepRevokeFinalizer(ctx, oldInv, inv); err != nil {
		return nil, err
	}
	changed := widenings(oldInv, inv, w.Authorizer.DefaultExpiresAfter)
	if len(changed) == 0 {
		return nil, nil
	}
	requester, err := requesterFrom(ctx)
	if err != nil {
		return nil, err
	}
	logf.FromContext(ctx).V(1).Info("re-authorizing an update that widens the invitation", "fields", changed, "requester", requester.Username)
	if newTokenSource(changed) {
		if err := w.checkCustomToken(ctx, inv, requester); err != nil {
			return nil, err
		}
	}
	adm := policy.Admission{TokenIssuedAt: tokenIssuedAt(inv, changed)}
	if _, err := w.authorize(ctx, inv, requester, adm, false); err != nil {
		return nil, err
	}
	if inv.Spec.Inviter != nil && inv.Spec.Inviter.Username != requester.Username {
		_, err = w.authorize(ctx, inv, *inv.Spec.Inviter, adm, true)
	}
	return nil, err
}

// keepRevokeFinalizer refuses anyone but the manager the removal of the revoke-grants
// finalizer: without it, deleting an invitation with revokeGrants would leave its grants
// behind, which is turning revokeGrants off without asking. The manager removes it once the
// grants are gone.
func (w *InvitationWebhook) keepRevokeFinalizer(ctx context.Context, oldInv, inv *invitesv1alpha1.Invitation) error {
	const f = invitesv1alpha1.RevokeGrantsFinalizer
	if !slices.Contains(oldInv.Finalizers, f) || slices.Contains(inv.Finalizers, f) {
		return nil
	}
	requester, err := requesterFrom(ctx)
	if err != nil {
		return err
	}
	if w.Self != "" && requester.Username == w.Self {
		return nil
	}
	return invalid(inv, field.Forbidden(field.NewPath("metadata", "finalizers"),
		f+" is removed by rolecall once the grants this invitation made are revoked; delete the invitation and it goes by itself"))
}

// tokenIssuedAt is when the token an update leaves in force was or will be issued, for
// limits.maxLifetime: now for a resend or a new token source (the token and its life start
// over), when the current token was issued for a longer expiresAfter, and zero for an
// update that extends no life.
func tokenIssuedAt(inv *invitesv1alpha1.Invitation, changed []string) time.Time {
	// Whole seconds, as the controller records issuedAt.
	now := time.Now().Truncate(time.Second)
	switch {
	case newTokenSource(changed):
		return now
	case slices.Contains(changed, expiresAfterPath):
		if issued := inv.Status.IssuedAt; issued != nil {
			return issued.Time
		}
		return now
	}
	return time.Time{}
}

// newTokenSource says whether the update makes rolecall issue or read a token anew: a
// resend, another token type, another Custom token Secret.
func newTokenSource(changed []string) bool {
	return slices.Contains(changed, resendPath) || slices.Contains(changed, tokenTypePath) || slices.Contains(changed, customTokenRefPath)
}

// ValidateDelete allows every deletion: removing an invitation grants nothing.
func (w *InvitationWebhook) ValidateDelete(context.Context, *invitesv1alpha1.Invitation) (admission.Warnings, error) {
	return nil, nil
}

// authorize returns the decision when the inviter may offer the invitation, and a
// Forbidden error that explains every refusal when not. When the inviter is not the
// requester (someone else changes an invitation), the explanation leaves out what the API
// server said about the inviter's RBAC rights: those are not the requester's to learn.
func (w *InvitationWebhook) authorize(ctx context.Context, inv *invitesv1alpha1.Invitation, inviter invitesv1alpha1.Inviter,
	adm policy.Admission, someoneElse bool) (policy.Decision, error) {
	decision, err := w.Authorizer.AuthorizeAdmission(ctx, inv, inviter, adm)
	if err != nil {
		return decision, apierrors.NewInternalError(fmt.Errorf("evaluating RoleGrantPolicies: %w", err))
	}
	log := logf.FromContext(ctx).WithValues("invitation", inv.Namespace+"/"+inv.Name, "inviter", inviter.Username)
	if !decision.Allowed {
		log.Info("invitation denied by policy", "candidates", decision.Candidates)
		metrics.PolicyDenials.WithLabelValues("admission").Inc()
		why := fmt.Errorf("%s may not offer these grants: %s", inviter.Username, decision.Message(inviter))
		if someoneElse {
			why = fmt.Errorf("the invitation's inviter %s, whose name it keeps, may not offer it as changed: %s",
				inviter.Username, decision.MessageForOthers(inviter))
		}
		return decision, apierrors.NewForbidden(invitationsResource, inv.Name, why)
	}
	log.V(1).Info("invitation allowed", "allowedBy", decision.AllowedBy)
	return decision, nil
}

func isDryRun(ctx context.Context) bool {
	req, err := admission.RequestFromContext(ctx)
	return err == nil && req.DryRun != nil && *req.DryRun
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
