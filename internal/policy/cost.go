package policy

import (
	"fmt"
	"math"
	"strconv"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/checker"
	"github.com/google/cel-go/common"
	celast "github.com/google/cel-go/common/ast"
	"github.com/google/cel-go/common/operators"
	"github.com/google/cel-go/common/overloads"
	"github.com/google/cel-go/common/types"
)

// RuleCostBudget bounds a rule's estimated worst-case cost, in CEL's cost units. The
// estimate assumes that every string, list and map the rule reads is as large as the
// schema allows, and charges every string or list the rule builds by its size, so a rule
// within the budget cannot make admission slow or allocate much on any object the API
// server would store. It equals RuleCostLimit: a rule that passes the estimate is not
// stopped at evaluation, and the runtime limit guards against data larger than the schema
// allows.
const RuleCostBudget = RuleCostLimit

// costEstimator gives CEL's cost estimate the sizes of the rules' variables. They are
// dynamic, so CEL knows nothing of their sizes and would take any string or list read from
// them to be unbounded; this follows the field path instead, as Kubernetes does for CRD
// validation rules with the sizes a schema declares. It also sizes the results of optional
// access, charges join() and format() for what they write (CEL's own estimates of them are
// far too small), and charges `in` on a map as the lookup it is.
type costEstimator struct {
	checked *celast.AST
	// shadowed are the variables a comprehension in the rule hides behind its own.
	shadowed map[string]bool
}

var _ checker.CostEstimator = (*costEstimator)(nil)

func newCostEstimator(a *cel.Ast) *costEstimator {
	checked := a.NativeRep()
	e := &costEstimator{checked: checked, shadowed: map[string]bool{}}
	for _, c := range celast.MatchDescendants(celast.NavigateAST(checked), celast.KindMatcher(celast.ComprehensionKind)) {
		comp := c.AsComprehension()
		e.shadowed[comp.IterVar()] = true
		e.shadowed[comp.IterVar2()] = true
		e.shadowed[comp.AccuVar()] = true
	}
	return e
}

// EstimateSize sizes what a rule reads from its variables.
func (e *costEstimator) EstimateSize(node checker.AstNode) *checker.SizeEstimate {
	if b := lookupBound(node.Path()); b != nil {
		return b.size()
	}
	return nil
}

// EstimateCallCost sizes the results of optional access, which would otherwise lose the
// field's size, and charges `in` on a map as the lookup it is.
func (e *costEstimator) EstimateCallCost(_, overloadID string, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	one := checker.FixedCostEstimate(1)
	switch overloadID {
	case "select_optional_field": // x.?field
		if len(args) == 2 {
			if name, ok := literalString(args[1].Expr()); ok {
				if b := lookupBound(append(append([]string{}, args[0].Path()...), name)); b != nil {
					return &checker.CallEstimate{CostEstimate: one, ResultSize: b.size()}
				}
			}
		}
	case "map_optindex_optional_value", "list_optindex_optional_int": // x[?key]
		if len(args) == 2 {
			if b := lookupBound(args[0].Path()); b != nil && b.elem != nil {
				return &checker.CallEstimate{CostEstimate: one, ResultSize: b.elem.size()}
			}
		}
	case "optional_value":
		if target != nil {
			return &checker.CallEstimate{CostEstimate: one, ResultSize: e.sizeOf(*target)}
		}
	case "optional_orValue_value", "optional_or_optional":
		if target != nil && len(args) == 1 {
			if size := unionSize(e.sizeOf(*target), e.sizeOf(args[0])); size != nil {
				return &checker.CallEstimate{CostEstimate: one, ResultSize: size}
			}
		}
	case overloads.InList:
		// A dynamic container could be a list or a map; on a map, `in` is a lookup.
		if len(args) == 2 {
			if b := lookupBound(args[1].Path()); b != nil && b.key != nil {
				return &checker.CallEstimate{CostEstimate: one}
			}
		}
	case overloads.ExtFormatString:
		return e.estimateFormat(target, args)
	case loopProbeOverload:
		return &checker.CallEstimate{CostEstimate: checker.FixedCostEstimate(loopProbeCost)}
	}
	return nil
}

// estimateFormat charges format() for the text it makes. CEL charges only for reading the
// format string, though each argument, however large, is written out in full.
func (e *costEstimator) estimateFormat(target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	if target == nil || len(args) != 1 {
		return nil
	}
	formatLength := maxOf(e.sizeOf(*target))
	var written uint64
	if items, ok := listLiteral(args[0].Expr()); ok {
		for _, item := range items {
			written = addSat(written, e.formattedLength(item))
		}
	} else if b := lookupBound(args[0].Path()); b != nil {
		written = b.formatted()
	} else {
		written = math.MaxUint64
	}
	result := checker.SizeEstimate{Min: 0, Max: addSat(formatLength, written)}
	read := checker.SizeEstimate{Min: 0, Max: formatLength}.MultiplyByCostFactor(common.StringTraversalCostFactor)
	return &checker.CallEstimate{CostEstimate: read.Add(result.AsCost()).Add(checker.FixedCostEstimate(1)), ResultSize: &result}
}

// estimateJoin charges join() for the string it makes: every item and every separator. The
// strings library's own estimate counts one character per item, so a list of long strings
// would be joined far beyond the estimate.
func estimateJoin(estimator checker.CostEstimator, target *checker.AstNode, args []checker.AstNode) *checker.CallEstimate {
	if target == nil {
		return nil
	}
	e, ok := estimator.(*costEstimator)
	if !ok {
		return nil
	}
	items := maxOf(e.sizeOf(*target))
	itemLength := e.itemLength(*target)
	var separator uint64
	if len(args) == 1 {
		separator = maxOf(e.sizeOf(args[0]))
	}
	result := checker.SizeEstimate{Min: 0, Max: mulSat(items, addSat(itemLength, separator))}
	read := checker.SizeEstimate{Min: 0, Max: addSat(items, 1)}.MultiplyByCostFactor(common.StringTraversalCostFactor)
	return &checker.CallEstimate{CostEstimate: read.Add(result.AsCost()).Add(checker.FixedCostEstimate(1)), ResultSize: &result}
}

// itemLength bounds the length of a list's strings: items read from a variable, or a list
// written in the rule.
func (e *costEstimator) itemLength(list checker.AstNode) uint64 {
	if b := lookupBound(list.Path()); b != nil {
		if b.elem == nil {
			return math.MaxUint64
		}
		return b.elem.max
	}
	items, ok := listLiteral(list.Expr())
	if !ok {
		return math.MaxUint64
	}
	var longest uint64
	for _, item := range items {
		if s, ok := literalString(item); ok {
			longest = max(longest, uint64(len([]rune(s))))
		} else if b := e.boundOf(item); b != nil {
			longest = max(longest, b.max)
		} else {
			return math.MaxUint64
		}
	}
	return longest
}

// formattedLength bounds the text format() makes of one argument.
func (e *costEstimator) formattedLength(expr celast.Expr) uint64 {
	if expr.Kind() == celast.LiteralKind {
		switch v := expr.AsLiteral().(type) {
		case types.String:
			return addSat(mulSat(uint64(len([]rune(string(v)))), formattedBytesPerRune), 2)
		case types.Bytes:
			return addSat(mulSat(uint64(len(v)), 2), 2)
		default:
			return maxFormattedScalar
		}
	}
	if isScalarType(e.checked.GetType(expr.ID())) {
		return maxFormattedScalar
	}
	if items, ok := listLiteral(expr); ok {
		total := uint64(2)
		for _, item := range items {
			total = addSat(total, addSat(e.formattedLength(item), 2))
		}
		return total
	}
	if b := e.boundOf(expr); b != nil {
		return b.formatted()
	}
	return math.MaxUint64
}

// boundOf bounds an expression that reads a variable directly, such as inviter.username
// or invitation.metadata.labels['tenant'], when no comprehension in the rule hides that
// variable.
func (e *costEstimator) boundOf(expr celast.Expr) *bound {
	var path []string
	for {
		switch expr.Kind() {
		case celast.SelectKind:
			sel := expr.AsSelect()
			if sel.IsTestOnly() {
				return nil
			}
			path = append([]string{sel.FieldName()}, path...)
			expr = sel.Operand()
			continue
		case celast.CallKind:
			call := expr.AsCall()
			if call.FunctionName() != operators.Index || len(call.Args()) != 2 {
				return nil
			}
			path = append([]string{"@values"}, path...)
			expr = call.Args()[0]
			continue
		case celast.IdentKind:
			if e.shadowed[expr.AsIdent()] {
				return nil
			}
			return lookupBound(append([]string{expr.AsIdent()}, path...))
		}
		return nil
	}
}

func (e *costEstimator) sizeOf(node checker.AstNode) *checker.SizeEstimate {
	if size := node.ComputedSize(); size != nil {
		return size
	}
	return e.EstimateSize(node)
}

func isScalarType(t *types.Type) bool {
	switch t.Kind() {
	case types.BoolKind, types.DoubleKind, types.DurationKind, types.IntKind, types.TimestampKind, types.UintKind, types.NullTypeKind:
		return true
	}
	return false
}

func literalString(expr celast.Expr) (string, bool) {
	if expr.Kind() != celast.LiteralKind {
		return "", false
	}
	s, ok := expr.AsLiteral().(types.String)
	return string(s), ok
}

func listLiteral(expr celast.Expr) ([]celast.Expr, bool) {
	if expr.Kind() != celast.ListKind {
		return nil, false
	}
	return expr.AsList().Elements(), true
}

func unionSize(a, b *checker.SizeEstimate) *checker.SizeEstimate {
	if a == nil || b == nil {
		return nil
	}
	u := a.Union(*b)
	return &u
}

func maxOf(size *checker.SizeEstimate) uint64 {
	if size == nil {
		return math.MaxUint64
	}
	return size.Max
}

func addSat(a, b uint64) uint64 {
	if a > math.MaxUint64-b {
		return math.MaxUint64
	}
	return a + b
}

func mulSat(a, b uint64) uint64 {
	if b != 0 && a > math.MaxUint64/b {
		return math.MaxUint64
	}
	return a * b
}

// costOptions override the estimates of the CEL libraries that are too small; they must
// come after the libraries when the environment is made.
func costOptions() cel.EnvOption {
	return cel.CostEstimatorOptions(
		checker.OverloadCostEstimate("list_join", estimateJoin),
		checker.OverloadCostEstimate("list_join_string", estimateJoin),
	)
}

// checkRuleCost says why a rule could take too long or too much memory to evaluate, or ""
// when it cannot: its estimated worst-case cost is over RuleCostBudget, or its cost times
// the length of its loops is over RuleLoopWorkLimit.
func checkRuleCost(env *cel.Env, a *cel.Ast) (string, error) {
	estimate, err := env.EstimateCost(a, newCostEstimator(a))
	if err != nil {
		return "", err
	}
	if estimate.Max > RuleCostBudget {
		return costExceedsBudget(estimate.Max, RuleCostBudget), nil
	}
	length, err := estimateLoopLength(env, a, estimate.Max)
	if err != nil {
		return "", err
	}
	if mulSat(estimate.Max, length) > RuleLoopWorkLimit {
		return loopsTooLong(estimate.Max, length, RuleLoopWorkLimit), nil
	}
	return "", nil
}

// costExceedsBudget says so in the words kube-apiserver uses for CRD validation rules.
func costExceedsBudget(cost, budget uint64) string {
	factor := float64(cost) / float64(budget)
	var by string
	switch {
	case factor > 100:
		by = "more than 100x"
	case factor < 1.5:
		by = fmt.Sprintf("%fx", factor)
	default:
		by = fmt.Sprintf("%.1fx", factor)
	}
	estimated := strconv.FormatUint(cost, 10)
	if cost == math.MaxUint64 {
		estimated = "unbounded"
	}
	return fmt.Sprintf("estimated rule cost exceeds budget by factor of %s (estimated worst-case cost %s, budget %d): "+
		"simplify the rule, do not build strings or lists that grow with each step, "+
		"and read fields directly so that their size limits are known", by, estimated, budget)
}
