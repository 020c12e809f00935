package policy

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
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
	c.Errors = append(c.Errors, validateLimits(rgp.Spec, spec)...)
	return c
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
