package policy_test

import (
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/policy"
)

// fuzzPolicies are the fixed policies FuzzEvaluate decides against: each names different
// inviters and mixes selectors, limits and CEL rules over every variable. e-broken's rule
// does not compile, so it must refuse everyone it names.
func fuzzPolicies() []*invitesv1alpha1.RoleGrantPolicy {
	named := func(name string, spec invitesv1alpha1.RoleGrantPolicySpec) *invitesv1alpha1.RoleGrantPolicy {
		return &invitesv1alpha1.RoleGrantPolicy{ObjectMeta: metav1.ObjectMeta{Name: name}, Spec: spec}
	}
	return []*invitesv1alpha1.RoleGrantPolicy{
		named("a-team-leads", invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:          []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "team-leads"}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"tenant": "team-a"}},
			GrantableRoles:    []invitesv1alpha1.GrantableRole{{ClusterRole: "edit"}, {ClusterRole: "view"}, {Role: "deployer"}},
			Limits: &invitesv1alpha1.PolicyLimits{
				MaxUses: ptr.To[int32](10), MaxExpiresAfter: &metav1.Duration{Duration: 168 * time.Hour},
				RequireEmail: true, AllowedEmailDomains: []string{"example.com"},
			},
			Rules: []invitesv1alpha1.PolicyRule{{Expression: "invitation.spec.email.endsWith('@example.com')", Message: "company emails only"}},
		}),
		named("b-platform", invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:         []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "platform"}},
			GrantableRoles:   []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}, {ClusterRole: "edit"}},
			AllowClusterWide: true,
			Rules: []invitesv1alpha1.PolicyRule{
				{Expression: "'platform' in inviter.groups && !inviter.username.startsWith('system:')", Message: "people on the platform team only"},
				{Expression: "inviter.groups.all(g, !g.startsWith('banned:'))", Message: "no banned groups"},
				{Expression: "!has(invitation.spec.grantDuration) || duration(invitation.spec.grantDuration) <= duration('720h')", Message: "grants for 30 days at most"},
			},
		}),
		named("c-robots", invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectServiceAccount, Namespace: "platform", Name: "onboarding"}},
			GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
			Limits: &invitesv1alpha1.PolicyLimits{
				TokenTypes: []invitesv1alpha1.TokenType{invitesv1alpha1.TokenTypeCode}, MaxActiveInvitationsPerInviter: ptr.To[int32](5),
			},
			Rules: []invitesv1alpha1.PolicyRule{
				{Expression: "namespaceObject.metadata.labels['tenant'] == 'team-a'", Message: "team-a only"},
				{Expression: "invitation.metadata.name.matches('^[a-z0-9-]+$') && invitation.spec.grants.size() <= 2", Message: "plain names, two grants at most"},
			},
		}),
		named("d-lee", invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectUser, Name: "lee"}},
			GrantableRoles: []invitesv1alpha1.GrantableRole{{Role: "deployer"}},
			Limits:         &invitesv1alpha1.PolicyLimits{MaxGrantDuration: &metav1.Duration{Duration: 24 * time.Hour}},
			Rules: []invitesv1alpha1.PolicyRule{
				{Expression: "invitation.spec.?email.orValue('').size() < 100", Message: "short emails"},
				// A list when inviter.extra has "flag", so not always a bool.
				{Expression: "inviter.extra[?'flag'].orValue(true)", Message: "flagged"},
			},
		}),
		named("e-broken", invitesv1alpha1.RoleGrantPolicySpec{
			Inviters:       []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "system:authenticated"}},
			GrantableRoles: []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
			Rules:          []invitesv1alpha1.PolicyRule{{Expression: "(", Message: "broken"}},
		}),
	}
}

func fuzzNamespaces() map[string]*corev1.Namespace {
	ns := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	return map[string]*corev1.Namespace{
		"team-a": ns("team-a", map[string]string{"tenant": "team-a"}), "team-a-prod": ns("team-a-prod", map[string]string{"tenant": "team-a"}),
		"team-b": ns("team-b", map[string]string{"tenant": "team-b"}), "bare": ns("bare", nil),
	}
}

var tokenTypes = []invitesv1alpha1.TokenType{invitesv1alpha1.TokenTypeLink, invitesv1alpha1.TokenTypeCode, invitesv1alpha1.TokenTypeCustom, ""}

// FuzzEvaluate decides fuzzer-chosen invitations against fuzzPolicies. Evaluate must not
// panic, must not change the request, must give the same decision every time and in
// whatever order the policies come, must explain every denial, must only ever list the
// policies that name the inviter, and must only allow what the allowing policy allows.
func FuzzEvaluate(f *testing.F) {
	var compiled []*policy.Compiled
	for _, p := range fuzzPolicies() {
		compiled = append(compiled, policy.Compile(p))
	}
	reversed := slices.Clone(compiled)
	slices.Reverse(reversed)

	// invitation name, namespace, email, a grant (role or clusterRole, its namespace,
	// clusterWide), maxUses, expiresAfter and grantDuration in seconds (0: unset), token
	// type, inviter username and comma-separated groups, extra "flag" (empty: none),
	// active invitations.
	f.Add("new-dev", "team-a", "alice@example.com", "", "edit", "", false, int32(1), int64(0), int64(0), uint8(0), "lee", "team-leads,system:authenticated", "", uint16(0))
	f.Add("new-dev", "team-a", "Alice@EXAMPLE.com", "", "edit", "team-a-prod", false, int32(10), int64(168*3600), int64(0), uint8(0), "lee", "team-leads", "", uint16(0))
	f.Add("ops", "team-b", "", "", "view", "", true, int32(1000000), int64(0), int64(3600), uint8(1), "pat", "platform", "", uint16(0))
	f.Add("ops", "team-b", "", "", "view", "", true, int32(1), int64(0), int64(721*3600), uint8(1), "system:pat", "platform,banned:x", "", uint16(0))
	f.Add("bot", "team-a", "", "", "view", "", false, int32(1), int64(0), int64(0), uint8(1), "system:serviceaccount:platform:onboarding", "system:serviceaccounts", "", uint16(4))
	f.Add("Bot_1", "team-a", "", "", "view", "", false, int32(1), int64(0), int64(0), uint8(2), "system:serviceaccount:platform:onboarding", "", "", uint16(5))
	f.Add("lee-1", "bare", "x@y.z", "deployer", "", "", false, int32(1), int64(0), int64(3600), uint8(0), "lee", "", "", uint16(0))
	f.Add("lee-2", "ghost", strings.Repeat("e", 120)+"@example.com", "deployer", "", "team-b", false, int32(-1), int64(-5), int64(25*3600), uint8(3), "lee", ",,", "yes", uint16(65535))
	f.Add("", "", "@", "", "", "", false, int32(0), int64(0), int64(0), uint8(0), "", "", "", uint16(0))
	f.Add("x", "team-a", "eve@example.com.evil.test", "", "edit", "", false, int32(1), int64(0), int64(0), uint8(0), "eve", "team-leads", "", uint16(0))
	f.Fuzz(func(t *testing.T, name, namespace, email, role, clusterRole, grantNamespace string, clusterWide bool,
		maxUses int32, expiresAfter, grantDuration int64, tokenType uint8, username, groups, flag string, active uint16) {
		inv := &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace},
			Spec: invitesv1alpha1.InvitationSpec{
				Email:     email,
				Grants:    []invitesv1alpha1.Grant{{Role: role, ClusterRole: clusterRole, Namespace: grantNamespace, ClusterWide: clusterWide}},
				MaxUses:   maxUses,
				TokenType: tokenTypes[int(tokenType)%len(tokenTypes)],
			},
		}
		if expiresAfter != 0 {
			inv.Spec.ExpiresAfter = &metav1.Duration{Duration: time.Duration(expiresAfter) * time.Second}
		}
		if grantDuration != 0 {
			inv.Spec.GrantDuration = &metav1.Duration{Duration: time.Duration(grantDuration) * time.Second}
		}
		inviter := invitesv1alpha1.Inviter{Username: username}
		if groups != "" {
			inviter.Groups = strings.Split(groups, ",")
		}
		if flag != "" {
			inviter.Extra = map[string]invitesv1alpha1.ExtraValue{"flag": {flag}}
		}
		req := policy.Request{
			Invitation: inv, Inviter: inviter, Namespaces: fuzzNamespaces(),
			DefaultExpiresAfter: 72 * time.Hour, ActiveInvitations: int(active),
		}
		before := inv.DeepCopy()

		d := policy.Evaluate(compiled, req)
		msg := d.Message(inviter)
		if !reflect.DeepEqual(inv, before) {
			t.Fatalf("Evaluate changed the invitation: %+v, was %+v", inv, before)
		}
		if again := policy.Evaluate(compiled, req); !reflect.DeepEqual(again, d) {
			t.Fatalf("Evaluate is not deterministic: %+v, then %+v", d, again)
		}
		if other := policy.Evaluate(reversed, req); !reflect.DeepEqual(other, d) {
			t.Fatalf("the policies' order changed the decision: %+v, then %+v", d, other)
		}
		if msg == "" {
			t.Fatalf("the decision %+v has no message", d)
		}

		var naming []string
		for _, c := range compiled {
			if policy.NamesInviter(c.Policy.Spec.Inviters, inviter) {
				naming = append(naming, c.Policy.Name)
			}
		}
		if !d.Allowed {
			if d.Candidates != len(naming) || len(d.Refusals) != len(naming) {
				t.Fatalf("%d policies name the inviter, but the denial has %d candidates and %d refusals", len(naming), d.Candidates, len(d.Refusals))
			}
			for i, r := range d.Refusals {
				if r.Policy != naming[i] || r.Reason == "" {
					t.Fatalf("refusal %d is %+v; the policies naming the inviter are %v", i, r, naming)
				}
				if !strings.Contains(msg, r.Reason) {
					t.Fatalf("the message %q leaves out %s's reason %q", msg, r.Policy, r.Reason)
				}
			}
			return
		}
		if !slices.Contains(naming, d.AllowedBy) {
			t.Fatalf("allowed by %q, which does not name the inviter (named by %v)", d.AllowedBy, naming)
		}
		checkAllowed(t, d.AllowedBy, req)
	})
}

// checkAllowed restates, independently of the code under test, what each policy lets
// through.
func checkAllowed(t *testing.T, by string, req policy.Request) {
	t.Helper()
	spec := req.Invitation.Spec
	g := spec.Grants[0]
	fail := func(why string) { t.Fatalf("%s allowed %+v by %+v, but %s", by, spec, req.Inviter, why) }
	involved := []string{req.Invitation.Namespace}
	if g.Namespace != "" && !g.ClusterWide {
		involved = append(involved, g.Namespace)
	}
	for _, ns := range involved {
		if req.Namespaces[ns] == nil {
			fail("namespace " + ns + " does not exist")
		}
	}
	grantable := func(roles ...string) bool {
		return (g.Role != "" && slices.Contains(roles, "role/"+g.Role)) || (g.ClusterRole != "" && slices.Contains(roles, "clusterRole/"+g.ClusterRole))
	}
	switch by {
	case "a-team-leads":
		for _, ns := range involved {
			if req.Namespaces[ns].Labels["tenant"] != "team-a" {
				fail("namespace " + ns + " is not team-a's")
			}
		}
		expiresAfter := req.DefaultExpiresAfter
		if spec.ExpiresAfter != nil {
			expiresAfter = spec.ExpiresAfter.Duration
		}
		switch {
		case g.ClusterWide:
			fail("the grant is cluster-wide")
		case !grantable("clusterRole/edit", "clusterRole/view", "role/deployer"):
			fail("the role is not grantable")
		case spec.MaxUses > 10:
			fail("maxUses is over 10")
		case expiresAfter > 168*time.Hour:
			fail("expiresAfter is over 168h")
		case !strings.HasSuffix(spec.Email, "@example.com"):
			fail("the email is not @example.com")
		}
	case "b-platform":
		switch {
		case !grantable("clusterRole/view", "clusterRole/edit"):
			fail("the role is not grantable")
		case !slices.Contains(req.Inviter.Groups, "platform") || strings.HasPrefix(req.Inviter.Username, "system:"):
			fail("the inviter is not a person on the platform team")
		case slices.ContainsFunc(req.Inviter.Groups, func(g string) bool { return strings.HasPrefix(g, "banned:") }):
			fail("the inviter is in a banned group")
		case spec.GrantDuration != nil && spec.GrantDuration.Duration > 720*time.Hour:
			fail("grantDuration is over 720h")
		}
	case "c-robots":
		switch {
		case req.Inviter.Username != "system:serviceaccount:platform:onboarding":
			fail("the inviter is not the onboarding service account")
		case g.ClusterWide || !grantable("clusterRole/view"):
			fail("the grant is not view in a namespace")
		case spec.TokenType != invitesv1alpha1.TokenTypeCode:
			fail("the token is not a Code")
		case req.ActiveInvitations >= 5:
			fail("the inviter has 5 active invitations")
		case req.Namespaces[req.Invitation.Namespace].Labels["tenant"] != "team-a":
			fail("the namespace is not team-a's")
		}
	case "d-lee":
		switch {
		case req.Inviter.Username != "lee":
			fail("the inviter is not lee")
		case g.ClusterWide || !grantable("role/deployer"):
			fail("the grant is not the deployer Role")
		case spec.GrantDuration == nil || spec.GrantDuration.Duration > 24*time.Hour:
			fail("grantDuration is unset or over 24h")
		case len(req.Inviter.Extra) > 0:
			fail("the flag rule returned a list, not true")
		}
	default:
		fail("this policy can allow nothing")
	}
}

// maxRuleLength mirrors the CRD's maxLength for spec.rules[].expression: the API server
// refuses longer rules, so Compile never sees them.
const maxRuleLength = 4096

// FuzzCompile compiles arbitrary rule text. Compile must not panic, must either compile
// the rule or say why not, and whatever it returns must evaluate without panicking, within
// the cost limit (no rule may hang admission), to a decision that explains itself; a rule
// that does not compile must allow nothing. The requests are within the schema's limits,
// so a rule that passed the cost estimate must never meet the runtime cost limit.
func FuzzCompile(f *testing.F) {
	for _, seed := range []string{
		"true", "false", "(", ")", "", "'yes'", "1 == 1", "inviter.", "null", "dyn(1)",
		"invitation.spec.email.endsWith('@example.com')",
		"'platform' in inviter.groups",
		"namespaceObject.metadata.labels['tenant'] == 'team-a'",
		"invitation.spec.?email.orValue('') == ''",
		"inviter.extra[?'flag'].orValue(true)",
		"invitation.spec.grants.all(g, has(g.clusterRole) && g.clusterRole in ['view', 'edit'])",
		"invitation.spec.maxUses",
		"duration(invitation.spec.expiresAfter) < duration('1h')",
		"inviter.username.matches('^(a+)+$')",
		"sets.contains(inviter.groups, ['team-leads'])",
		"lists.range(1000000).size() > 0",
		"'%.1000000000f'.format([1.0]) != ''",
		"[1,2,3,4,5,6,7,8,9,10].all(a, [1,2,3,4,5,6,7,8,9,10].all(b, [1,2,3,4,5,6,7,8,9,10].all(c, [1,2,3,4,5,6,7,8,9,10].all(d, [1,2,3,4,5,6,7,8,9,10].all(e, [1,2,3,4,5,6,7,8,9,10].all(f, inviter.username.size() > 0))))))",
		strings.Repeat("(", 200) + "true" + strings.Repeat(")", 200),
		strings.Repeat("!", 1000) + "true",
		strings.Repeat("'a' + ", 600) + "'a' == ''",
		"'a'" + strings.Repeat(".replace('a', 'aaaaaaaa')", 7) + ".size() > 0",
		"lists.range(1000).map(i, inviter.username).join('') != ''",
		"'%s'.format([lists.range(1000).map(i, inviter.username)]) != ''",
		"inviter.groups.join(inviter.username).size() > 0",
		"lists.range(100000).all(i, i >= 0)",
		"invitation.spec.?email.orValue('').contains('@')",
	} {
		f.Add(seed)
	}
	requests := []policy.Request{
		{
			Invitation: &invitesv1alpha1.Invitation{
				ObjectMeta: metav1.ObjectMeta{Name: "new-dev", Namespace: "team-a"},
				Spec: invitesv1alpha1.InvitationSpec{
					Email: "alice@example.com", Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}, MaxUses: 3,
					ExpiresAfter: &metav1.Duration{Duration: time.Hour}, TokenType: invitesv1alpha1.TokenTypeLink,
				},
			},
			Inviter:    invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"fuzzers", "team-leads"}, Extra: map[string]invitesv1alpha1.ExtraValue{"flag": {"x"}}},
			Namespaces: fuzzNamespaces(), DefaultExpiresAfter: 72 * time.Hour,
		},
		{
			Invitation: &invitesv1alpha1.Invitation{
				ObjectMeta: metav1.ObjectMeta{Name: "bare", Namespace: "bare"},
				Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}}},
			},
			Inviter:    invitesv1alpha1.Inviter{Username: strings.Repeat("u", 512), Groups: []string{"fuzzers"}},
			Namespaces: fuzzNamespaces(),
		},
	}
	f.Fuzz(func(t *testing.T, expression string) {
		if expression == "" || len(expression) > maxRuleLength {
			return
		}
		start := time.Now()
		rgp := &invitesv1alpha1.RoleGrantPolicy{
			ObjectMeta: metav1.ObjectMeta{Name: "fuzzed"},
			Spec: invitesv1alpha1.RoleGrantPolicySpec{
				Inviters:         []invitesv1alpha1.Subject{{Kind: invitesv1alpha1.SubjectGroup, Name: "fuzzers"}},
				GrantableRoles:   []invitesv1alpha1.GrantableRole{{ClusterRole: "view"}},
				AllowClusterWide: true,
				Rules:            []invitesv1alpha1.PolicyRule{{Expression: expression, Message: "the fuzzed rule does not hold"}},
			},
		}
		c := policy.Compile(rgp)
		switch {
		case len(c.Errors) == 0 && len(c.Rules) == 1:
		case len(c.Errors) == 1 && len(c.Rules) == 0:
			if !strings.HasPrefix(c.Errors[0].Field, "spec.rules[0].expression") || c.Errors[0].Detail == "" {
				t.Fatalf("the compile error does not name the rule or say why: %v", c.Errors[0])
			}
			if c.Errors[0].Type == field.ErrorTypeInternal {
				t.Fatalf("compiling %q failed inside: %v", expression, c.Errors[0])
			}
		default:
			t.Fatalf("Compile(%q) gave %d rules and errors %v", expression, len(c.Rules), c.Errors)
		}
		for _, req := range requests {
			d := policy.Evaluate([]*policy.Compiled{c}, req)
			msg := d.Message(req.Inviter)
			if d.Allowed {
				if len(c.Errors) > 0 {
					t.Fatalf("a rule that does not compile allowed an invitation: %q", expression)
				}
				continue
			}
			if len(d.Refusals) != 1 || d.Refusals[0].Reason == "" || !strings.Contains(msg, d.Refusals[0].Reason) {
				t.Fatalf("a denial that does not explain itself: %+v, %q", d, msg)
			}
			reason := d.Refusals[0].Reason
			if (len(c.Errors) > 0 && !strings.HasPrefix(reason, "the policy cannot be used: ")) ||
				(len(c.Errors) == 0 && !strings.HasPrefix(reason, "rules[0]")) {
				t.Fatalf("refused for the wrong reason: %q", reason)
			}
			if len(c.Errors) == 0 && strings.Contains(reason, "cost limit exceeded") {
				t.Fatalf("%q passed the cost estimate but met the runtime limit: %q", expression, reason)
			}
			// No determinism check here: CEL iterates maps in Go's random order, so a rule
			// such as invitation.spec.map(k, k)[0] == 'email' may answer differently each
			// time. FuzzEvaluate checks determinism for rules that do not depend on it.
		}
		// A hang detector, not a benchmark: the cost limit keeps any rule far below this.
		if elapsed := time.Since(start); elapsed > 10*time.Second {
			t.Fatalf("%q took %s to compile and evaluate", expression, elapsed)
		}
	})
}
