// Package policy decides who may grant what: it compiles and evaluates RoleGrantPolicies.
package policy

import (
	"fmt"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/ext"
	"k8s.io/apimachinery/pkg/util/validation/field"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Variables a rule expression can use.
const (
	// InviterVariable is the inviter: username, uid, groups, extra.
	InviterVariable = "inviter"
	// InvitationVariable is the Invitation: metadata and spec.
	InvitationVariable = "invitation"
	// NamespaceVariable is the invitation's Namespace object. It is not called "namespace"
	// because that word is reserved in CEL; Kubernetes' ValidatingAdmissionPolicy names the
	// same thing namespaceObject.
	NamespaceVariable = "namespaceObject"
	// NamespacesVariable lists the Namespace of every namespace a grant lands in, each
	// shaped like namespaceObject. The invitation's own namespace is only one of the places
	// its grants can land; a rule about where roles are granted reads this list.
	NamespacesVariable = "namespaces"
)

// RuleCostLimit bounds the work one rule may do at evaluation, in CEL's cost units, so that
// a rule cannot make admission slow (the same order as Kubernetes' per-expression limit).
const RuleCostLimit = 1_000_000

// ruleInterruptCheckFrequency is how many steps of a loop a rule takes between checks
// whether its evaluation was cancelled (an admission request that timed out, say), as
// Kubernetes does.
const ruleInterruptCheckFrequency = 100

// CompiledRule is a rule ready to evaluate.
type CompiledRule struct {
	Rule    invitesv1alpha1.PolicyRule
	Program cel.Program
}

// newEnvironment is the CEL environment every rule compiles in. The variables are dynamic
// maps, shaped like the objects' JSON, so rules read like the YAML people write.
func newEnvironment() (*cel.Env, error) {
	return cel.NewEnv(
		cel.Variable(InviterVariable, cel.DynType),
		cel.Variable(InvitationVariable, cel.DynType),
		cel.Variable(NamespaceVariable, cel.DynType),
		cel.Variable(NamespacesVariable, cel.ListType(cel.DynType)),
		ext.Strings(),
		ext.Sets(),
		ext.Lists(),
		cel.OptionalTypes(),
		costOptions(),
	)
}

// CompileRules compiles every rule of a policy. The errors name the rule by its field path
// (spec.rules[2].expression) and say why it cannot be used.
func CompileRules(rules []invitesv1alpha1.PolicyRule, fldPath *field.Path) ([]CompiledRule, field.ErrorList) {
	env, err := newEnvironment()
	if err != nil {
		return nil, field.ErrorList{field.InternalError(fldPath, err)}
	}
	var errs field.ErrorList
	compiled := make([]CompiledRule, 0, len(rules))
	for i, rule := range rules {
		path := fldPath.Index(i).Child("expression")
		ast, issues := env.Compile(rule.Expression)
		if issues != nil && issues.Err() != nil {
			errs = append(errs, field.Invalid(path, rule.Expression, "does not compile: "+issues.Err().Error()))
			continue
		}
		if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
			errs = append(errs, field.Invalid(path, rule.Expression,
				fmt.Sprintf("must return a bool, not %s", ast.OutputType())))
			continue
		}
		tooExpensive, err := checkRuleCost(env, ast)
		if err != nil {
			errs = append(errs, field.InternalError(path, err))
			continue
		}
		if tooExpensive != "" {
			errs = append(errs, field.Invalid(path, rule.Expression, tooExpensive))
			continue
		}
		program, err := env.Program(ast, cel.CostLimit(RuleCostLimit), cel.InterruptCheckFrequency(ruleInterruptCheckFrequency))
		if err != nil {
			errs = append(errs, field.Invalid(path, rule.Expression, err.Error()))
			continue
		}
		compiled = append(compiled, CompiledRule{Rule: rule, Program: program})
	}
	return compiled, errs
}
