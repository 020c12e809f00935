package policy

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Request is one invitation to authorize, with what the decision needs to know.
type Request struct {
	// Invitation is the invitation as it would be stored.
	Invitation *invitesv1alpha1.Invitation
	// Inviter is who asks.
	Inviter invitesv1alpha1.Inviter
	// Namespaces holds the invitation's namespace and every grant's, by name. A namespace
	// that does not exist is missing, and no selector selects it.
	Namespaces map[string]*corev1.Namespace
	// DefaultExpiresAfter is the lifetime of a token when spec.expiresAfter is unset.
	DefaultExpiresAfter time.Duration
	// ActiveInvitations counts the inviter's other Pending or Active invitations.
	ActiveInvitations int
}

// Refusal is why one candidate policy did not allow an invitation.
type Refusal struct {
	Policy string
	Reason string
}

// Decision is the outcome of evaluating every policy for a request.
type Decision struct {
	// Allowed is true when AllowedBy allows the invitation.
	Allowed bool
	// AllowedBy names the policy that allows it.
	AllowedBy string
	// Candidates counts the policies that name the inviter.
	Candidates int
	// Refusals says, for each policy that names the inviter, why it did not allow it.
	Refusals []Refusal
	// Delegation says why the inviter's own RBAC rights did not allow it, when asked.
	Delegation string
}

// Message explains a denial: each candidate policy and why it did not apply. Policies that
// do not name the inviter are not listed, so a denial does not reveal other teams' policies.
func (d Decision) Message(inviter invitesv1alpha1.Inviter) string {
	if d.Allowed && d.AllowedBy == DelegationName {
		return "allowed by the inviter's own RBAC rights (they may create each binding and bind its role)"
	}
	if d.Allowed {
		return "allowed by RoleGrantPolicy " + d.AllowedBy
	}
	policies := fmt.Sprintf("no RoleGrantPolicy names user %q or any of their groups %v", inviter.Username, inviter.Groups)
	if d.Candidates > 0 {
		parts := make([]string, 0, len(d.Refusals))
		for _, r := range d.Refusals {
			parts = append(parts, fmt.Sprintf("RoleGrantPolicy %s: %s", r.Policy, r.Reason))
		}
		policies = "no RoleGrantPolicy allows this invitation: " + strings.Join(parts, "; ")
	}
	delegation := ""
	if d.Delegation != "" {
		delegation = "nor do the inviter's own RBAC rights: " + d.Delegation
	}
	return joinNonEmpty("; ", policies, delegation)
}

// Evaluate decides whether any policy allows the request. Policies are tried by name, so
// the same request always gets the same answer and message.
func Evaluate(policies []*Compiled, req Request) Decision {
	return EvaluateContext(context.Background(), policies, req)
}

// EvaluateContext is Evaluate that stops evaluating rules when ctx is done, so that a
// request that was given up on does not keep a rule running.
func EvaluateContext(ctx context.Context, policies []*Compiled, req Request) Decision {
	sorted := slices.Clone(policies)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Policy.Name < sorted[j].Policy.Name })
	var d Decision
	for _, p := range sorted {
		if !NamesInviter(p.Policy.Spec.Inviters, req.Inviter) {
			continue
		}
		d.Candidates++
		reason := p.refuse(ctx, req)
		if reason == "" {
			return Decision{Allowed: true, AllowedBy: p.Policy.Name, Candidates: d.Candidates}
		}
		d.Refusals = append(d.Refusals, Refusal{Policy: p.Policy.Name, Reason: reason})
	}
	return d
}

// refuse returns why the policy does not allow the request, or "" when it does.
func (p *Compiled) refuse(ctx context.Context, req Request) string {
	if len(p.Errors) > 0 {
		return "the policy cannot be used: " + p.Errors.ToAggregate().Error()
	}
	refuseRules := func(req Request) string { return p.refuseRules(ctx, req) }
	checks := []func(Request) string{p.refuseNamespaces, p.refuseGrants, p.refuseLimits, refuseRules}
	for _, check := range checks {
		if reason := check(req); reason != "" {
			return reason
		}
	}
	return ""
}

// NamesInviter says whether any subject is the inviter: their username, one of their
// groups, or their service account.
func NamesInviter(subjects []invitesv1alpha1.Subject, inviter invitesv1alpha1.Inviter) bool {
	for _, s := range subjects {
		switch s.Kind {
		case invitesv1alpha1.SubjectUser:
			if s.Name == inviter.Username {
				return true
			}
		case invitesv1alpha1.SubjectGroup:
			if slices.Contains(inviter.Groups, s.Name) {
				return true
			}
		case invitesv1alpha1.SubjectServiceAccount:
			if inviter.Username == "system:serviceaccount:"+s.Namespace+":"+s.Name {
				return true
			}
		}
	}
	return false
}

// InvolvedNamespaces are the invitation's namespace and each namespaced grant's, in order.
func InvolvedNamespaces(inv *invitesv1alpha1.Invitation) []string {
	names := []string{inv.Namespace}
	for _, g := range inv.Spec.Grants {
		if !g.ClusterWide && g.Namespace != "" && !slices.Contains(names, g.Namespace) {
			names = append(names, g.Namespace)
		}
	}
	return names
}

func (p *Compiled) refuseNamespaces(req Request) string {
	for _, name := range InvolvedNamespaces(req.Invitation) {
		ns, ok := req.Namespaces[name]
		if !ok {
			return fmt.Sprintf("namespace %s does not exist", name)
		}
		if !p.Selector.Matches(labels.Set(ns.Labels)) {
			return fmt.Sprintf("namespace %s is not selected by its namespaceSelector (%s)", name, p.Selector)
		}
	}
	return ""
}

func (p *Compiled) refuseGrants(req Request) string {
	for i, g := range req.Invitation.Spec.Grants {
		if g.ClusterWide && !p.Policy.Spec.AllowClusterWide {
			return fmt.Sprintf("grants[%d]: cluster-wide grants are not allowed", i)
		}
		if !grantable(p.Policy.Spec.GrantableRoles, g) {
			return fmt.Sprintf("grants[%d]: %s is not grantable (grantable: %s)", i, describeGrant(g), describeRoles(p.Policy.Spec.GrantableRoles))
		}
	}
	return ""
}

func grantable(roles []invitesv1alpha1.GrantableRole, g invitesv1alpha1.Grant) bool {
	for _, r := range roles {
		if (g.Role != "" && r.Role == g.Role) || (g.ClusterRole != "" && r.ClusterRole == g.ClusterRole) {
			return true
		}
	}
	return false
}

func describeGrant(g invitesv1alpha1.Grant) string {
	if g.Role != "" {
		return "role " + g.Role
	}
	return "clusterRole " + g.ClusterRole
}

func describeRoles(roles []invitesv1alpha1.GrantableRole) string {
	parts := make([]string, 0, len(roles))
	for _, r := range roles {
		parts = append(parts, describeGrant(invitesv1alpha1.Grant{Role: r.Role, ClusterRole: r.ClusterRole}))
	}
	return strings.Join(parts, ", ")
}

func (p *Compiled) refuseRules(ctx context.Context, req Request) string {
	if len(p.Rules) == 0 {
		return ""
	}
	vars, err := ruleVariables(req)
	if err != nil {
		return "the rules could not be given the invitation: " + err.Error()
	}
	for i, rule := range p.Rules {
		out, _, err := rule.Program.ContextEval(ctx, vars)
		if err != nil {
			return fmt.Sprintf("rules[%d] could not be evaluated: %v", i, err)
		}
		allowed, ok := out.Value().(bool)
		if !ok {
			// Possible when the expression's type was only known at run time (dyn).
			return fmt.Sprintf("rules[%d] returned %v, not a bool", i, out.Type())
		}
		if !allowed {
			return fmt.Sprintf("rules[%d]: %s", i, rule.Rule.Message)
		}
	}
	return ""
}

// ruleVariables shapes the request like the objects' JSON, as rule authors see them in YAML.
func ruleVariables(req Request) (map[string]any, error) {
	spec, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&req.Invitation.Spec)
	if err != nil {
		return nil, err
	}
	groups := req.Inviter.Groups
	if groups == nil {
		groups = []string{}
	}
	extra := map[string]any{}
	for k, v := range req.Inviter.Extra {
		extra[k] = []string(v)
	}
	namespace := map[string]any{"metadata": map[string]any{"name": req.Invitation.Namespace}}
	if ns, ok := req.Namespaces[req.Invitation.Namespace]; ok {
		namespace["metadata"] = map[string]any{
			"name": ns.Name, "labels": stringMap(ns.Labels), "annotations": stringMap(ns.Annotations),
		}
	}
	return map[string]any{
		InviterVariable: map[string]any{
			"username": req.Inviter.Username, "uid": req.Inviter.UID, "groups": groups, "extra": extra,
		},
		InvitationVariable: map[string]any{
			"metadata": map[string]any{
				"name": req.Invitation.Name, "namespace": req.Invitation.Namespace,
				"labels": stringMap(req.Invitation.Labels), "annotations": stringMap(req.Invitation.Annotations),
			},
			"spec": spec,
		},
		NamespaceVariable: namespace,
	}, nil
}

func stringMap(m map[string]string) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// joinNonEmpty joins the non-empty parts of a message.
func joinNonEmpty(sep string, parts ...string) string {
	kept := parts[:0]
	for _, p := range parts {
		if p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, sep)
}
