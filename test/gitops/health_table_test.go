package gitops_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// generation is the spec generation of every object built here.
const generation = 3

func condition(conditionType string, status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return metav1.Condition{
		Type: conditionType, Status: status, Reason: reason, Message: message,
		ObservedGeneration: generation, LastTransitionTime: metav1.Now(),
	}
}

func ready(status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return condition(invitesv1alpha1.InvitationReadyCondition, status, reason, message)
}

func delivered(status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return condition(invitesv1alpha1.InvitationDeliveredCondition, status, reason, message)
}

// pending is a Pending invitation as rolecall reports it: Ready repeats why TokenIssued is False.
func pending(reason, message string) map[string]any {
	return reported(invitesv1alpha1.PhasePending,
		condition(invitesv1alpha1.InvitationTokenIssuedCondition, metav1.ConditionFalse, reason, message),
		ready(metav1.ConditionFalse, reason, message))
}

// reported is an invitation in a phase, with status for its current generation.
func reported(phase invitesv1alpha1.InvitationPhase, conditions ...metav1.Condition) map[string]any {
	inv := &invitesv1alpha1.Invitation{
		TypeMeta:   metav1.TypeMeta{APIVersion: invitesv1alpha1.GroupVersion.String(), Kind: "Invitation"},
		ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "alice", Generation: generation},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "edit"}}, MaxUses: 1},
		Status:     invitesv1alpha1.InvitationStatus{Phase: phase, ObservedGeneration: generation, Conditions: conditions},
	}
	return unstructuredFrom(inv)
}

// unstructuredFrom converts a typed object while the table is built, before any spec
// runs (so no assertion is possible); rolecall's own types always convert.
func unstructuredFrom(obj runtime.Object) map[string]any {
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		panic(err)
	}
	return u
}

// withoutStatus drops status, as on an invitation rolecall has not seen yet.
func withoutStatus(obj map[string]any) map[string]any {
	delete(obj, "status")
	return obj
}

// staleBy makes status describe an older generation than spec: Git changed the spec and
// rolecall has not caught up yet.
func staleBy(obj map[string]any) map[string]any {
	obj["metadata"].(map[string]any)["generation"] = int64(generation + 1)
	return obj
}

const redeemable = "the invitation can be redeemed until 2026-12-01T10:00:00Z"

var activeAndReady = ready(metav1.ConditionTrue, invitesv1alpha1.InvitationActiveReason, redeemable)

var _ = Describe("The Argo CD health check for Invitations, status by status", func() {
	DescribeTable("reports",
		func(obj map[string]any, want health) {
			Expect(runHealthScript(scripts[invitationHealthKey], obj)).To(Equal(want))
		},
		Entry("Progressing before rolecall has seen the invitation",
			withoutStatus(reported(invitesv1alpha1.PhaseActive)),
			health{"Progressing", "waiting for rolecall to report on the invitation"}),
		Entry("Progressing while status describes an older spec, whatever its phase",
			staleBy(reported(invitesv1alpha1.PhaseDenied, ready(metav1.ConditionFalse, "Denied", "no"))),
			health{"Progressing", "waiting for rolecall to report on generation 4"}),
		Entry("Healthy when Active and delivered",
			reported(invitesv1alpha1.PhaseActive, activeAndReady, delivered(metav1.ConditionTrue, invitesv1alpha1.InvitationDeliveredReason, "sent to alice@example.com")),
			health{"Healthy", redeemable}),
		Entry("Healthy when Active and not delivered by rolecall at all",
			reported(invitesv1alpha1.PhaseActive, activeAndReady),
			health{"Healthy", redeemable}),
		Entry("Progressing when Active and a failed delivery is being retried",
			reported(invitesv1alpha1.PhaseActive, activeAndReady, delivered(metav1.ConditionFalse, invitesv1alpha1.InvitationDeliveryRetryingReason, "attempt 2 failed: connection refused; retrying")),
			health{"Progressing", "attempt 2 failed: connection refused; retrying"}),
		Entry("Degraded when Active and every delivery attempt failed",
			reported(invitesv1alpha1.PhaseActive, activeAndReady, delivered(metav1.ConditionFalse, invitesv1alpha1.InvitationDeliveryFailedReason, "5 attempts failed; resend to try again")),
			health{"Degraded", "5 attempts failed; resend to try again"}),
		Entry("Degraded when Active and the manager has no channel for the delivery asked for",
			reported(invitesv1alpha1.PhaseActive, activeAndReady, delivered(metav1.ConditionFalse, invitesv1alpha1.InvitationDeliveryNotConfiguredReason, "the manager has no --smtp-host")),
			health{"Degraded", "the manager has no --smtp-host"}),
		Entry("Healthy when Exhausted, even if delivery failed: someone got the link and used it",
			reported(invitesv1alpha1.PhaseExhausted, ready(metav1.ConditionFalse, invitesv1alpha1.InvitationExhaustedReason, "all 1 uses have been redeemed"),
				delivered(metav1.ConditionFalse, invitesv1alpha1.InvitationDeliveryFailedReason, "5 attempts failed")),
			health{"Healthy", "all 1 uses have been redeemed"}),
		Entry("Progressing when Pending on a Custom token Secret still to come",
			pending(invitesv1alpha1.InvitationCustomTokenMissingReason, "waiting for Secret beta-code"),
			health{"Progressing", "waiting for Secret beta-code"}),
		Entry("Degraded when Pending on a Custom token too easy to guess",
			pending(invitesv1alpha1.InvitationCustomTokenWeakReason, "the token in Secret beta-code is too easy to guess"),
			health{"Degraded", "the token in Secret beta-code is too easy to guess"}),
		Entry("Degraded when Pending on a Custom token Secret without rolecall's label",
			pending(invitesv1alpha1.InvitationCustomTokenUnlabeledReason, "Secret beta-code exists but lacks the label"),
			health{"Degraded", "Secret beta-code exists but lacks the label"}),
		Entry("Degraded when Pending because another Secret has the token Secret's name",
			pending("SecretConflict", "Secret alice-invitation-token already exists"),
			health{"Degraded", "Secret alice-invitation-token already exists"}),
		Entry("Degraded when Denied for want of an inviter",
			reported(invitesv1alpha1.PhaseDenied, ready(metav1.ConditionFalse, invitesv1alpha1.InvitationNoInviterReason, "no inviter is recorded")),
			health{"Degraded", "no inviter is recorded"}),
		Entry("Suspended when Declined by the invited person",
			reported(invitesv1alpha1.PhaseDeclined, ready(metav1.ConditionFalse, invitesv1alpha1.InvitationDeclinedReason, "declined by oidc:alice")),
			health{"Suspended", "declined by oidc:alice"}),
		Entry("Unknown in a phase the check does not know",
			reported("Paused", ready(metav1.ConditionFalse, "Paused", "paused")),
			health{"Unknown", "unknown phase Paused"}),
	)
})

// policyReporting is a RoleGrantPolicy with the given Ready condition for its current spec.
func policyReporting(conditions ...metav1.Condition) map[string]any {
	rgp := &invitesv1alpha1.RoleGrantPolicy{
		TypeMeta:   metav1.TypeMeta{APIVersion: invitesv1alpha1.GroupVersion.String(), Kind: "RoleGrantPolicy"},
		ObjectMeta: metav1.ObjectMeta{Name: "team-leads", Generation: generation},
		Status:     invitesv1alpha1.RoleGrantPolicyStatus{ObservedGeneration: generation, Conditions: conditions},
	}
	return unstructuredFrom(rgp)
}

func policyReady(status metav1.ConditionStatus, reason, message string) metav1.Condition {
	return condition(invitesv1alpha1.PolicyReadyCondition, status, reason, message)
}

var _ = Describe("The Argo CD health check for RoleGrantPolicies, status by status", func() {
	DescribeTable("reports",
		func(obj map[string]any, want health) {
			Expect(runHealthScript(scripts[roleGrantPolicyHealthKey], obj)).To(Equal(want))
		},
		Entry("Healthy when Ready",
			policyReporting(policyReady(metav1.ConditionTrue, invitesv1alpha1.PolicyCompiledReason, "the policy's selector, rules and limits can be used")),
			health{"Healthy", "the policy's selector, rules and limits can be used"}),
		Entry("Degraded when a rule does not compile, naming it",
			policyReporting(policyReady(metav1.ConditionFalse, invitesv1alpha1.PolicyInvalidRuleReason, "spec.rules[0].expression: undeclared reference to 'invitaton'")),
			health{"Degraded", "spec.rules[0].expression: undeclared reference to 'invitaton'"}),
		Entry("Progressing before rolecall has checked it",
			withoutStatus(policyReporting()),
			health{"Progressing", "waiting for rolecall to check the policy"}),
		Entry("Progressing while status describes an older spec",
			staleBy(policyReporting(policyReady(metav1.ConditionTrue, invitesv1alpha1.PolicyCompiledReason, "fine"))),
			health{"Progressing", "waiting for rolecall to check generation 4"}),
	)
})
