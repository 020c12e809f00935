package controllers

import (
	"context"
	"strings"

	"k8s.io/apimachinery/pkg/api/equality"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// RoleGrantPolicyReconciler reports whether each RoleGrantPolicy can be used: its CEL rules
// compile and its namespace selector parses. Admission rejects broken policies up front; this
// covers the ones created while admission could not check them.
type RoleGrantPolicyReconciler struct {
	client.Client
}

// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=rolegrantpolicies,verbs=get;list;watch
// +kubebuilder:rbac:groups=invites.rolecall.dev,resources=rolegrantpolicies/status,verbs=get;update;patch

// Reconcile compiles one policy and records the outcome in its Ready condition.
func (r *RoleGrantPolicyReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	rgp := &invitesv1alpha1.RoleGrantPolicy{}
	if err := r.Get(ctx, req.NamespacedName, rgp); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	before := rgp.DeepCopy()
	meta.SetStatusCondition(&rgp.Status.Conditions, readiness(rgp))
	meta.SetStatusCondition(&rgp.Status.Conditions, policy.NamespaceScopeCondition(rgp))
	rgp.Status.ObservedGeneration = rgp.Generation
	if equality.Semantic.DeepEqual(before.Status, rgp.Status) {
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, r.Status().Patch(ctx, rgp, client.MergeFrom(before))
}

// readiness is the Ready condition for a policy, from the same compilation that evaluation
// uses: True, or False with every reason the policy allows nothing, so the condition never
// says Ready for a policy that evaluation would refuse as unusable.
func readiness(rgp *invitesv1alpha1.RoleGrantPolicy) metav1.Condition {
	cond := metav1.Condition{
		Type: invitesv1alpha1.PolicyReadyCondition, Status: metav1.ConditionTrue,
		Reason: invitesv1alpha1.PolicyCompiledReason, Message: "the policy's selector, rules and limits can be used",
		ObservedGeneration: rgp.Generation,
	}
	errs := policy.Compile(rgp).Errors
	if len(errs) == 0 {
		return cond
	}
	cond.Status, cond.Message = metav1.ConditionFalse, errs.ToAggregate().Error()
	switch first := errs[0].Field; {
	case strings.HasPrefix(first, "spec.namespaceSelector"):
		cond.Reason = invitesv1alpha1.PolicyInvalidSelectorReason
	case strings.HasPrefix(first, "spec.rules"):
		cond.Reason = invitesv1alpha1.PolicyInvalidRuleReason
	default:
		cond.Reason = invitesv1alpha1.PolicyInvalidReason
	}
	return cond
}

// SetupWithManager registers the reconciler.
func (r *RoleGrantPolicyReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&invitesv1alpha1.RoleGrantPolicy{}).
		Named("rolegrantpolicy").
		Complete(r)
}
