package policy

import (
	"fmt"
	"math"

	"github.com/google/cel-go/cel"
	celast "github.com/google/cel-go/common/ast"
)

// RuleLoopWorkLimit bounds a rule's estimated cost times the length of its loops (all,
// exists, exists_one, map, filter), summed over them. The runtime cost limit does not bound
// the time loops take: cel-go's cost tracker slows each step of a loop in proportion to how
// far the loop has come, so a loop takes time in proportion to its cost times its length
// (a loop over 160,000 items that costs under RuleCostLimit takes about a minute; nested
// loops slow each other too, so their lengths add up). The limit lets a rule of any cost
// within RuleCostBudget loop over the inviter's groups, and keeps the tracker's extra work
// to a fraction of a second.
const RuleLoopWorkLimit = 1 << 28

const (
	// loopProbeFunction takes the place of one loop's condition in a copy of a rule made
	// only to be estimated, so that the estimate tells how often that condition runs. Rules
	// cannot call it: only the copy's environment declares it.
	loopProbeFunction = "rolecall.loopProbe"
	loopProbeOverload = "rolecall_loop_probe"
	// loopProbeCost is charged for each run of the probe. It is more than twice any estimate
	// within RuleCostBudget, so that rounding the difference it makes recovers the count.
	loopProbeCost = 1 << 24
)

// loop is a comprehension in a rule.
type loop struct {
	id int64
	// parent is the index of the innermost loop whose body holds this one, or -1.
	parent int
}

// findLoops lists a rule's comprehensions, each after the loops around it.
func findLoops(a *celast.AST) []loop {
	var loops []loop
	var visit func(e celast.Expr, parent int)
	visit = func(e celast.Expr, parent int) {
		switch e.Kind() {
		case celast.ComprehensionKind:
			comp := e.AsComprehension()
			visit(comp.IterRange(), parent)
			visit(comp.AccuInit(), parent)
			body := parent
			if !isBind(comp) {
				loops = append(loops, loop{id: e.ID(), parent: parent})
				body = len(loops) - 1
			}
			visit(comp.LoopCondition(), body)
			visit(comp.LoopStep(), body)
			visit(comp.Result(), parent)
		case celast.CallKind:
			call := e.AsCall()
			if call.IsMemberFunction() {
				visit(call.Target(), parent)
			}
			for _, arg := range call.Args() {
				visit(arg, parent)
			}
		case celast.ListKind:
			for _, elem := range e.AsList().Elements() {
				visit(elem, parent)
			}
		case celast.MapKind:
			for _, entry := range e.AsMap().Entries() {
				visit(entry.AsMapEntry().Key(), parent)
				visit(entry.AsMapEntry().Value(), parent)
			}
		case celast.StructKind:
			for _, f := range e.AsStruct().Fields() {
				visit(f.AsStructField().Value(), parent)
			}
		case celast.SelectKind:
			visit(e.AsSelect().Operand(), parent)
		}
	}
	visit(a.Expr(), -1)
	return loops
}

// isBind says whether a comprehension only binds a value (optMap does), and so never
// loops.
func isBind(comp celast.ComprehensionExpr) bool {
	r := comp.IterRange()
	return r.Kind() == celast.ListKind && r.AsList().Size() == 0
}

// maxMeasuredLoops bounds how many loops of a rule are measured one by one, since each
// measure estimates the whole rule again.
const maxMeasuredLoops = 8

// loopProbe replaces the conditions of the loops with the given ids by a call to
// loopProbeFunction.
type loopProbe struct{ ids map[int64]bool }

func (p loopProbe) Optimize(ctx *cel.OptimizerContext, a *celast.AST) *celast.AST {
	matches := celast.MatchDescendants(celast.NavigateAST(a), func(e celast.NavigableExpr) bool {
		return p.ids[e.ID()] && e.Kind() == celast.ComprehensionKind
	})
	if len(matches) != len(p.ids) {
		// Counting nothing would let a loop through unmeasured.
		ctx.ReportErrorAtID(a.Expr().ID(), "the loops to measure were not found")
		return a
	}
	for _, m := range matches {
		m.AsComprehension().LoopCondition().SetKindCase(ctx.NewCall(loopProbeFunction))
	}
	return a
}

// estimateLoopLength estimates how many items each of a rule's loops may go over, and sums
// them. estimate is the rule's estimated cost, which the probes are compared with.
func estimateLoopLength(env *cel.Env, a *cel.Ast, estimate uint64) (uint64, error) {
	loops := findLoops(a.NativeRep())
	if len(loops) == 0 {
		return 0, nil
	}
	probeEnv, err := env.Extend(cel.Function(loopProbeFunction, cel.Overload(loopProbeOverload, nil, cel.BoolType)))
	if err != nil {
		return 0, err
	}
	all := make(map[int64]bool, len(loops))
	nested := false
	for _, l := range loops {
		all[l.id] = true
		nested = nested || l.parent >= 0
	}
	// The steps of all loops together bound the sum of their lengths, and are that sum when
	// no loop is inside another: a loop inside another takes its steps once for each step of
	// the outer one.
	total, err := estimateLoopSteps(probeEnv, a, estimate, all)
	if err != nil || !nested || mulSat(estimate, total) <= RuleLoopWorkLimit || len(loops) > maxMeasuredLoops {
		return total, err
	}
	steps := make([]uint64, len(loops))
	for i, l := range loops {
		if steps[i], err = estimateLoopSteps(probeEnv, a, estimate, map[int64]bool{l.id: true}); err != nil {
			return 0, err
		}
	}
	var length uint64
	for i, l := range loops {
		if l.parent >= 0 && steps[l.parent] > 0 && steps[l.parent] < math.MaxUint64 {
			length = addSat(length, steps[i]/steps[l.parent])
		} else {
			length = addSat(length, steps[i])
		}
	}
	return length, nil
}

// estimateLoopSteps estimates how often the conditions of the loops with the given ids run
// in all, from the estimate of a copy of the rule where each run of them costs
// loopProbeCost.
func estimateLoopSteps(probeEnv *cel.Env, a *cel.Ast, estimate uint64, ids map[int64]bool) (uint64, error) {
	optimizer, err := cel.NewStaticOptimizer(loopProbe{ids: ids})
	if err != nil {
		return 0, err
	}
	probe, iss := optimizer.Optimize(probeEnv, a)
	if iss.Err() != nil {
		return 0, iss.Err()
	}
	probed, err := probeEnv.EstimateCost(probe, newCostEstimator(probe))
	switch {
	case err != nil:
		return 0, err
	case probed.Max == math.MaxUint64:
		return math.MaxUint64, nil
	case probed.Max > estimate:
		return addSat(probed.Max-estimate, loopProbeCost/2) / loopProbeCost, nil
	}
	return 0, nil
}

func loopsTooLong(estimate, length, limit uint64) string {
	return fmt.Sprintf("its loops are too long for its cost: the estimated cost (%d) times the length of its loops "+
		"(%d items in all) exceeds the limit of %d, because each step of a loop slows down with the steps before it; "+
		"loop over the variables' lists rather than long generated ones, and keep long loops cheap",
		estimate, length, limit)
}
