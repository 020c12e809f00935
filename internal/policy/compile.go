package policy

import (
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Compiled is a RoleGrantPolicy ready to evaluate: its selector parsed and its rules compiled.
type Compiled struct {
	Policy   *invitesv1alpha1.RoleGrantPolicy
	Selector labels.Selector
	Rules    []CompiledRule
	// Errors says why the policy cannot be used; a policy with errors allows nothing.
	Errors field.ErrorList
}

// Compile parses a policy's selector and compiles its rules.
func Compile(rgp *invitesv1alpha1.RoleGrantPolicy) *Compiled {
	c := &Compiled{Policy: rgp, Selector: labels.Everything()}
	spec := field.NewPath("spec")
	if rgp.Spec.NamespaceSelector != nil {
		selector, err := metav1.LabelSelectorAsSelector(rgp.Spec.NamespaceSelector)
		if err != nil {
			c.Errors = append(c.Errors, field.Invalid(spec.Child("namespaceSelector"), rgp.Spec.NamespaceSelector, err.Error()))
		} else {
			c.Selector = selector
		}
	}
	rules, errs := CompileRules(rgp.Spec.Rules, spec.Child("rules"))
	c.Rules = rules
	c.Errors = append(c.Errors, errs...)
	c.Errors = append(c.Errors, validateInviters(rgp.Spec.Inviters, spec.Child("inviters"))...)
	c.Errors = append(c.Errors, validateLimits(rgp.Spec, spec)...)
	return c
}

// maxLifetime is the policy's limits.maxLifetime, or 0 when it sets none.
func (p *Compiled) maxLifetime() time.Duration {
	if l := p.Policy.Spec.Limits; l != nil && l.MaxLifetime != nil {
		return l.MaxLifetime.Duration
	}
	return 0
}

// SelectsAllNamespaces says whether the policy's namespaceSelector is unset or empty, so
// that its inviters may grant in every namespace, kube-system included.
func SelectsAllNamespaces(rgp *invitesv1alpha1.RoleGrantPolicy) bool {
	s := rgp.Spec.NamespaceSelector
	return s == nil || (len(s.MatchLabels) == 0 && len(s.MatchExpressions) == 0)
}

// AllNamespacesWarning is the warning for a policy that selects every namespace.
const AllNamespacesWarning = "spec.namespaceSelector is unset or empty, so this policy lets its inviters grant its roles " +
	"in every namespace, kube-system and namespaces created later included; select the namespaces it is meant for"

// NamespaceScopeCondition is the SelectsAllNamespaces condition the policy controller
// reports, so that a policy that reached the cluster without admission's warning (or
// whose author missed it) still shows how far it reaches.
func NamespaceScopeCondition(rgp *invitesv1alpha1.RoleGrantPolicy) metav1.Condition {
	cond := metav1.Condition{
		Type: invitesv1alpha1.PolicySelectsAllNamespacesCondition, ObservedGeneration: rgp.Generation,
		Status: metav1.ConditionFalse, Reason: invitesv1alpha1.PolicyNamespaceSelectorReason,
		Message: "the policy applies only in the namespaces its namespaceSelector selects",
	}
	if SelectsAllNamespaces(rgp) {
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, invitesv1alpha1.PolicyNoNamespaceSelectorReason, AllNamespacesWarning
	}
	return cond
}

// Warnings are what admission tells the author of a policy that can be used but is
// probably wider than meant.
func Warnings(rgp *invitesv1alpha1.RoleGrantPolicy) []string {
	if SelectsAllNamespaces(rgp) {
		return []string{AllNamespacesWarning}
	}
	return nil
}

// validateInviters refuses a ServiceAccount subject named by its username: it would never
// match, since a service account inviter is matched by namespace and object name.
func validateInviters(subjects []invitesv1alpha1.Subject, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	for i, s := range subjects {
		if s.Kind != invitesv1alpha1.SubjectServiceAccount {
			continue
		}
		if strings.HasPrefix(s.Name, "system:serviceaccount:") || len(validation.IsDNS1123Subdomain(s.Name)) > 0 {
			errs = append(errs, field.Invalid(fldPath.Index(i).Child("name"), s.Name,
				"a ServiceAccount's name is the name of the ServiceAccount object (such as onboarding, with its namespace in namespace), "+
					"not a username such as system:serviceaccount:platform:onboarding"))
		}
	}
	return errs
}

// validateLimits finds limits that contradict the rest of the policy, so that it could
// never allow anything.
func validateLimits(spec invitesv1alpha1.RoleGrantPolicySpec, fldPath *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.AllowClusterWide && !anyClusterRole(spec.GrantableRoles) {
		errs = append(errs, field.Invalid(fldPath.Child("allowClusterWide"), true,
			"no grantable role is a clusterRole, so nothing could be granted cluster-wide"))
	}
	limits := spec.Limits
	if limits != nil && len(limits.AllowedEmailDomains) > 0 && !limits.RequireEmail {
		errs = append(errs, field.Invalid(fldPath.Child("limits", "allowedEmailDomains"), limits.AllowedEmailDomains,
			"needs limits.requireEmail: without it an invitation could leave email empty and bypass the domain check"))
	}
	return errs
}

func anyClusterRole(roles []invitesv1alpha1.GrantableRole) bool {
	for _, r := range roles {
		if r.ClusterRole != "" {
			return true
		}
	}
	return false
}
