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
	// TokenIssuedAt is when the token this request leaves in force was or will be issued:
	// now for a new invitation or a resend, status.issuedAt for a change of expiresAfter.
	// limits.maxLifetime is checked against it; the zero time skips that check, because
	// a request that issues no token and changes no expiry cannot extend a life.
	TokenIssuedAt time.Time
}

// expiresAfter is the lifetime of the invitation's token.
func (r Request) expiresAfter() time.Duration {
	if r.Invitation.Spec.ExpiresAfter != nil {
		return r.Invitation.Spec.ExpiresAfter.Duration
	}
	return r.DefaultExpiresAfter
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
	// MaxLifetime is the allowing policy's limits.maxLifetime, or 0 when nothing caps how
	// long the invitation may stay open (see LifetimeEnd).
	MaxLifetime time.Duration
}

// LifetimeEnd is the moment the invitation must close under the decision that allows it:
// its creation plus the allowing policy's limits.maxLifetime. It is false when nothing
// caps the invitation's life. No token, first or resent, may stay valid past it.
func LifetimeEnd(inv *invitesv1alpha1.Invitation, d Decision) (time.Time, bool) {
	if !d.Allowed || d.MaxLifetime <= 0 {
		return time.Time{}, false
	}
	return inv.CreationTimestamp.Add(d.MaxLifetime), true
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

// MessageForOthers explains a denial to someone other than the inviter: the candidate
// policies and why they did not apply, but not what the API server said about the
// inviter's RBAC rights, which are not the requester's to learn.
func (d Decision) MessageForOthers(inviter invitesv1alpha1.Inviter) string {
	if d.Delegation != "" {
		d.Delegation = "they may not make every binding themselves"
	}
	return d.Message(inviter)
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
			return Decision{Allowed: true, AllowedBy: p.Policy.Name, Candidates: d.Candidates, MaxLifetime: p.maxLifetime()}
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
	for _, name := range GrantNamespaces(inv) {
		if !slices.Contains(names, name) {
			names = append(names, name)
		}
	}
	return names
}

// GrantNamespaces are the namespaces the invitation's grants land in, each once, in order:
// a grant's namespace, or the invitation's for a grant without one. Cluster-wide grants
// land in no namespace.
func GrantNamespaces(inv *invitesv1alpha1.Invitation) []string {
	var names []string
	for _, g := range inv.Spec.Grants {
		name := g.LandsIn(inv.Namespace)
		if name == "" {
			continue
		}
		if !slices.Contains(names, name) {
			names = append(names, name)
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
	spec := p.Policy.Spec
	for i, g := range req.Invitation.Spec.Grants {
		if g.ClusterWide && !spec.AllowClusterWide {
			return fmt.Sprintf("grants[%d]: cluster-wide grants are not allowed", i)
		}
		if !grantable(spec.GrantableRoles, g) {
			return fmt.Sprintf("grants[%d]: %s is not grantable (grantable: %s)", i, describeGrant(g), describeRoles(spec.GrantableRoles))
		}
		if reason := refuseIDPGroup(spec.GrantableIDPGroups, g); reason != "" {
			return fmt.Sprintf("grants[%d]: %s", i, reason)
		}
	}
	if req.Invitation.Spec.Upgrade == invitesv1alpha1.UpgradeReplace && !spec.AllowReplace {
		return "upgrade: Replace removes the person's grants from other invitations, and the policy does not set allowReplace"
	}
	return ""
}

// refuseIDPGroup says why a grant's idpGroup is not allowed: membership of an identity
// provider group can carry rights anywhere, so only a group the policy lists may be offered.
func refuseIDPGroup(allowed []string, g invitesv1alpha1.Grant) string {
	if g.IDPGroup == "" || slices.Contains(allowed, g.IDPGroup) {
		return ""
	}
	if len(allowed) == 0 {
		return fmt.Sprintf("idpGroup %s is not grantable (the policy lists no grantableIDPGroups)", g.IDPGroup)
	}
	return fmt.Sprintf("idpGroup %s is not grantable (grantableIDPGroups: %s)", g.IDPGroup, strings.Join(allowed, ", "))
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
	grantNamespaces := GrantNamespaces(req.Invitation)
	namespaces := make([]any, 0, len(grantNamespaces))
	for _, name := range grantNamespaces {
		namespaces = append(namespaces, namespaceVariable(req, name))
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
		NamespaceVariable:  namespaceVariable(req, req.Invitation.Namespace),
		NamespacesVariable: namespaces,
	}, nil
}

// namespaceVariable is a Namespace as rules see it: its name, labels and annotations.
func namespaceVariable(req Request, name string) map[string]any {
	ns, ok := req.Namespaces[name]
	if !ok {
		return map[string]any{"metadata": map[string]any{"name": name}}
	}
	return map[string]any{"metadata": map[string]any{
		"name": ns.Name, "labels": stringMap(ns.Labels), "annotations": stringMap(ns.Annotations),
	}}
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
