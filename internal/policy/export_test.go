package policy

// RuleVariables are the variables a rule sees for a request.
var RuleVariables = ruleVariables

// Bound tells what the cost estimate assumes at a path through the rules' variables, such
// as ["invitation", "spec", "grants", "@items", "role"]: the longest string, the most items
// or entries (an object's number of fields), and whether it is a number, bool or duration.
func Bound(path ...string) (limit uint64, scalar, known bool) {
	b := lookupBound(path)
	if b == nil {
		return 0, false, false
	}
	return b.max, b.scalar, true
}
