package policy_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// annotation reads the invitation's annotation a, which may be as long as Kubernetes allows
// all of an object's annotations to be (256 KiB).
const annotation = "invitation.metadata.annotations['a']"

// compileSecondRule compiles a policy whose second rule is expression, so that errors must
// name the right rule.
func compileSecondRule(expression string) field.ErrorList {
	return policy.Compile(teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
		p.Spec.Rules = []invitesv1alpha1.PolicyRule{
			{Expression: "true", Message: "always"},
			{Expression: expression, Message: "the rule under test"},
		}
	})).Errors
}

func repeatJoined(s string, n int, sep string) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = s
	}
	return strings.Join(parts, sep)
}

// overBudget is the message for a rule whose estimated cost is over the budget.
var overBudget = MatchRegexp(`^estimated rule cost exceeds budget by factor of (more than 100x|[0-9.]+x) ` +
	`\(estimated worst-case cost ([0-9]+|unbounded), budget 1000000\): simplify the rule`)

var _ = Describe("Bounding what a rule may cost", func() {
	DescribeTable("refuses a rule that could take too long or too much memory, naming it and saying why",
		func(expression string, why types.GomegaMatcher) {
			errs := compileSecondRule(expression)
			Expect(errs).To(HaveLen(1))
			Expect(errs[0].Type).To(Equal(field.ErrorTypeInvalid))
			Expect(errs[0].Field).To(Equal("spec.rules[1].expression"))
			Expect(errs[0].Detail).To(why)
		},
		Entry("a replace chained until the string is millions of characters long",
			"'a'"+strings.Repeat(".replace('a', 'aaaaaaaa')", 7)+".size() > 0",
			Equal("estimated rule cost exceeds budget by factor of 11.6x (estimated worst-case cost 11561335, budget 1000000): "+
				"simplify the rule, do not build strings or lists that grow with each step, and read fields directly so that their size limits are known")),
		Entry("a replace that squares an annotation", annotation+".replace('', "+annotation+").size() > 0", overBudget),
		Entry("a concatenation that doubles an annotation at each level",
			"("+repeatJoined("("+repeatJoined("("+repeatJoined(annotation, 2, " + ")+")", 2, " + ")+")", 4, " + ")+").size() > 0", overBudget),
		Entry("a range of two million items", "lists.range(2000000).size() > 0", overBudget),
		Entry("a list comprehension over a large range", "lists.range(500000).map(i, i * 2).size() > 0", overBudget),
		Entry("nested comprehensions", "[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, "+
			"[1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, inviter.username.size() > 0))))))", overBudget),
		Entry("a join of one annotation repeated", "lists.range(1000).map(i, "+annotation+").join('') != ''", overBudget),
		Entry("a format of one annotation repeated", "'%s'.format([lists.range(1000).map(i, "+annotation+")]) != ''", overBudget),
		Entry("a format of every group", "'%s'.format([inviter.groups]) != ''", overBudget),
		Entry("a regular expression read from an annotation", "inviter.username.matches("+annotation+")", overBudget),
		Entry("a search in keys whose length nothing declares", "inviter.extra.exists(k, k.contains('x'))", overBudget),
		Entry("a loop over every label of a namespace", "namespaceObject.metadata.labels.exists(k, k.startsWith('team-'))", overBudget),
		Entry("an annotation of every grant's namespace joined", "namespaces.map(ns, ns.metadata.annotations['a']).join() != ''", overBudget),
		Entry("a loop over every label of every grant's namespace", "namespaces.all(ns, ns.metadata.labels.exists(k, k.startsWith('team-')))", overBudget),
		Entry("a loop over the characters of an annotation", annotation+".split('').all(c, c != 'x')", overBudget),
		Entry("a search in a string whose source the estimate loses",
			"invitation.spec.?inviter.orValue({}).username.contains('x')", ContainSubstring("by factor of more than 100x")),
		Entry("a list whose size nothing bounds", "lists.range(int(inviter.uid)).size() > 0",
			ContainSubstring("(estimated worst-case cost unbounded, budget 1000000)")),
		Entry("a loop over a long range", "lists.range(100000).all(i, i >= 0)",
			MatchRegexp(`^its loops are too long for its cost: the estimated cost \([0-9]+\) times the length of its loops \(100000 items in all\) exceeds the limit of 268435456`)),
		Entry("nested loops over the groups, comparing them", "inviter.groups.all(a, inviter.groups.exists(b, a.size() <= b.size()))",
			MatchRegexp(`^its loops are too long for its cost: .* \(512 items in all\)`)),
		Entry("a loop over the groups concatenated forty times", "("+repeatJoined("inviter.groups", 40, " + ")+").all(g, g != '')",
			MatchRegexp(`^its loops are too long for its cost: .* \(10240 items in all\)`)),
	)

	DescribeTable("compiles the rules people write",
		func(expression string) {
			Expect(compileSecondRule(expression)).To(BeEmpty())
		},
		Entry("the team-leads sample", "invitation.spec.maxUses <= 5 || 'platform' in inviter.groups"),
		Entry("the earlier onboarding-bot sample", "has(namespaceObject.metadata.annotations) && "+
			"namespaceObject.metadata.annotations[?'invites.rolecall.dev/workshops'].orValue('') == 'allowed'"),
		Entry("the onboarding-bot sample", "namespaces.all(ns, ns.metadata.name == namespaceObject.metadata.name)"),
		Entry("every grant's namespace opted in", "namespaces.all(ns, ns.metadata.annotations[?'invites.rolecall.dev/workshops'].orValue('') == 'allowed')"),
		Entry("grants in at most two namespaces", "size(namespaces) <= 2"),
		Entry("a company email", "invitation.spec.email.endsWith('@example.com')"),
		Entry("an optional email", "invitation.spec.?email.orValue('').contains('+')"),
		Entry("people, not robots", "'platform' in inviter.groups && !inviter.username.startsWith('system:')"),
		Entry("no banned group", "inviter.groups.all(g, !g.startsWith('banned:'))"),
		Entry("a group by pattern", "inviter.groups.exists(g, g.matches('^team-[a-z0-9-]+$'))"),
		Entry("a group containing a word", "inviter.groups.exists(g, g.contains('admin'))"),
		Entry("grants for 30 days at most", "!has(invitation.spec.grantDuration) || duration(invitation.spec.grantDuration) <= duration('720h')"),
		Entry("a label of the namespace", "namespaceObject.metadata.labels['tenant'] == 'team-a'"),
		Entry("labels present", "'tenant' in namespaceObject.metadata.labels && 'owner' in namespaceObject.metadata.labels"),
		Entry("a label by optional access", "namespaceObject.metadata.labels[?'tenant'].orValue('').startsWith('team-')"),
		Entry("plain names, two grants at most", "invitation.metadata.name.matches('^[a-z0-9-]+$') && invitation.spec.grants.size() <= 2"),
		Entry("every grant a view or edit ClusterRole", "invitation.spec.grants.all(g, has(g.clusterRole) && g.clusterRole in ['view', 'edit'])"),
		Entry("grants in the tenant's namespaces", "invitation.spec.grants.all(g, !has(g.namespace) || g.namespace.startsWith(namespaceObject.metadata.name))"),
		Entry("a grant per group", "invitation.spec.grants.all(g, !has(g.idpGroup) || inviter.groups.exists(x, x == g.idpGroup))"),
		Entry("extra attributes", "inviter.extra.all(k, inviter.extra[k].all(v, v.size() < 100))"),
		Entry("a flag in extra", "inviter.extra[?'flag'].orValue(true)"),
		Entry("an email domain by split", "invitation.spec.email.split('@')[1] in ['example.com', 'example.org']"),
		Entry("the username's parts", "inviter.username.split(':').size() == 4"),
		Entry("the groups, joined", "inviter.groups.join(',').contains('platform')"),
		Entry("the username, formatted", "'%s/%s'.format([inviter.username, invitation.spec.maxUses]) != ''"),
		Entry("sets of groups", "sets.intersects(inviter.groups, ['team-leads', 'platform'])"),
		Entry("each grant against the groups", "invitation.spec.grants.all(g, inviter.groups.exists(x, x.size() <= g.role.size()))"),
		Entry("a loop over the groups near the budget", "inviter.groups.all(g, "+repeatJoined("g.matches('^[a-z]+(-[a-z]+)*$')", 12, " && ")+")"),
	)

	It("compiles every rule in docs/policy.md", func() {
		doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "policy.md"))
		Expect(err).NotTo(HaveOccurred())
		found := regexp.MustCompile(`(?m)^\s*-?\s*expression:\s*(".*")\s*$`).FindAllSubmatch(doc, -1)
		Expect(found).NotTo(BeEmpty())
		for _, m := range found {
			var expression string
			Expect(yaml.Unmarshal(m[1], &expression)).To(Succeed())
			Expect(compileSecondRule(expression)).To(BeEmpty(), expression)
		}
	})

	It("compiles the rules of the fuzzed policies that compile", func() {
		for _, p := range fuzzPolicies() {
			for _, r := range p.Spec.Rules {
				if r.Expression != "(" {
					Expect(compileSecondRule(r.Expression)).To(BeEmpty(), r.Expression)
				}
			}
		}
	})

	DescribeTable("evaluates the costliest rules that pass on the largest invitation, within a bounded allocation",
		func(expression string) {
			rgp := teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
				p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: expression, Message: "the rule under test"}}
				p.Spec.GrantableIDPGroups = []string{largestIDPGroup}
			})
			c := policy.Compile(rgp)
			Expect(c.Errors).To(BeEmpty())
			req := largestRequest()
			d := policy.Evaluate([]*policy.Compiled{c}, req)
			// Data within the schema's limits never meet the runtime limit.
			Expect(d.Allowed).To(BeTrue(), d.Message(req.Inviter))

			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			policy.Evaluate([]*policy.Compiled{c}, req)
			runtime.ReadMemStats(&after)
			// About 24 bytes for each unit of cost at worst (a list of a million ints).
			Expect(after.TotalAlloc - before.TotalAlloc).To(BeNumerically("<", 64*policy.RuleCostBudget))
		},
		costliestRuleEntries(),
	)

})

// costliestRules are rules that build the most within the budget from the largest values
// the schema allows.
var costliestRules = []struct{ name, expression string }{
	{"the longest range", "lists.range(999000).size() > 0"},
	{"an annotation split into characters", annotation + ".split('').size() > 0"},
	{"an annotation concatenated eight times", "(" + repeatJoined("("+repeatJoined(annotation, 2, " + ")+")", 4, " + ") + ") != ''"},
	{"an annotation doubled", annotation + ".replace('a', 'aa').size() > 0"},
	{"an annotation transformed", annotation + ".lowerAscii().upperAscii().reverse() != ''"},
	{"the username squared", "inviter.username.replace('', inviter.username).size() > 0"},
	{"every group joined by the username", "inviter.groups.join(inviter.username).size() > 0"},
	{"every group lengthened", "inviter.groups.map(g, g + inviter.username).size() > 0"},
	{"an annotation repeated and joined", "[" + repeatJoined(annotation, 3, ", ") + "].join() != ''"},
	{"the grants formatted", "'%s'.format([invitation.spec.grants]) != ''"},
	{"a long loop", "lists.range(6600).all(i, i >= 0)"},
	{"every grant's namespace's annotation searched", "namespaces.all(n, !n.metadata.annotations[?'a'].orValue('').contains('b'))"},
	{"every grant's namespace against the invitation's", "namespaces.all(n, n.metadata.name.startsWith(namespaceObject.metadata.name) || n.metadata.labels[?'tenant'] == namespaceObject.metadata.labels[?'tenant'])"},
}

// largestIDPGroup is the longest idpGroup a grant may have.
var largestIDPGroup = strings.Repeat("i", 253)

func costliestRuleEntries() []TableEntry {
	entries := make([]TableEntry, 0, len(costliestRules))
	for _, r := range costliestRules {
		entries = append(entries, Entry(r.name, r.expression))
	}
	return entries
}

// largestRequest is an invitation and inviter as large as the schema and Kubernetes allow
// where the costliest rules read them.
func largestRequest() policy.Request {
	groups := []string{"team-leads"}
	for len(groups) < 256 {
		groups = append(groups, fmt.Sprintf("%0512d", len(groups)))
	}
	// Every grant lands in a namespace of its own, each with annotations as large as allowed.
	all := namespaces()
	grants := make([]invitesv1alpha1.Grant, 16)
	for i := range grants {
		name := fmt.Sprintf("team-a-%02d", i)
		all[name] = &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"tenant": "team-a"},
			Annotations: map[string]string{"a": strings.Repeat("a", 256*1024-1)}}}
		grants[i] = invitesv1alpha1.Grant{ClusterRole: "edit", IDPGroup: largestIDPGroup, Namespace: name}
	}
	inv := invitation(func(s *invitesv1alpha1.InvitationSpec) { s.Grants = grants })
	inv.Name = strings.Repeat("n", 253)
	inv.Annotations = map[string]string{"a": strings.Repeat("a", 256*1024-1)}
	return policy.Request{
		Invitation: inv, Inviter: invitesv1alpha1.Inviter{Username: strings.Repeat("u", 512), Groups: groups},
		Namespaces: all, DefaultExpiresAfter: time.Hour,
	}
}

// BenchmarkCostliestRules measures what the costliest rules that pass take to evaluate on
// the largest invitation.
func BenchmarkCostliestRules(b *testing.B) {
	for _, r := range costliestRules {
		b.Run(r.name, func(b *testing.B) {
			c := policy.Compile(teamLeadsPolicy(func(p *invitesv1alpha1.RoleGrantPolicy) {
				p.Spec.Rules = []invitesv1alpha1.PolicyRule{{Expression: r.expression, Message: "m"}}
				p.Spec.GrantableIDPGroups = []string{largestIDPGroup}
			}))
			if len(c.Errors) > 0 {
				b.Fatal(c.Errors)
			}
			req := largestRequest()
			b.ReportAllocs()
			for b.Loop() {
				policy.Evaluate([]*policy.Compiled{c}, req)
			}
		})
	}
}
