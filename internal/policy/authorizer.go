package policy

import (
	"context"
	"fmt"
	"sync"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// InviterIndex indexes Invitations by spec.inviter.username, to count an inviter's
// active invitations for maxActiveInvitationsPerInviter.
const InviterIndex = "spec.inviter.username"

// InviterIndexValue is the index function for InviterIndex.
func InviterIndexValue(obj client.Object) []string {
	inv, ok := obj.(*invitesv1alpha1.Invitation)
	if !ok || inv.Spec.Inviter == nil {
		return nil
	}
	return []string{inv.Spec.Inviter.Username}
}

// Authorizer decides whether an inviter may create an invitation, from the
// RoleGrantPolicies in the cluster and, optionally, the inviter's own RBAC rights.
// Admission and redemption call it alike, so a policy narrowed after an invitation was
// created also stops its redemption.
type Authorizer struct {
	// Reader reads RoleGrantPolicies, Namespaces and Invitations (a cache is fine).
	Reader client.Reader
	// Writer creates SubjectAccessReviews.
	Writer client.Writer
	// AllowRBACDelegation lets an inviter grant what they could bind themselves.
	AllowRBACDelegation bool
	// DefaultExpiresAfter is the token lifetime when spec.expiresAfter is unset.
	DefaultExpiresAfter time.Duration

	mu       sync.Mutex
	compiled map[types.UID]*Compiled
	// answers remembers SubjectAccessReview answers briefly: the controller re-checks every
	// invitation on every pass, and asking the API server each time would double the
	// writes an invitation costs.
	answersOnce sync.Once
	answers     *utilcache.LRUExpireCache
}

// answerTTL bounds how long a remembered RBAC answer is used: a right taken away takes
// effect for rolecall within this time.
const answerTTL = 10 * time.Second

// DelegationName is AllowedBy when the inviter's own RBAC rights allowed the invitation.
const DelegationName = "RBAC delegation"

// Authorize evaluates the invitation for the inviter stamped in it (or given).
func (a *Authorizer) Authorize(ctx context.Context, inv *invitesv1alpha1.Invitation, inviter invitesv1alpha1.Inviter) (Decision, error) {
	return a.AuthorizeAdmission(ctx, inv, inviter, Admission{})
}

// Admission is what an admission request knows beyond the invitation itself.
type Admission struct {
	// TokenIssuedAt is Request.TokenIssuedAt: when the token the request leaves in force
	// was or will be issued, for limits.maxLifetime; zero when the request extends no life.
	TokenIssuedAt time.Time
	// ActiveInvitations, when set, is the inviter's count of other open invitations as the
	// caller counted it (live, and with the creates it admitted that may not be stored yet);
	// otherwise they are counted from the cache.
	ActiveInvitations *int
}

// AuthorizeAdmission is Authorize with what an admission request adds.
func (a *Authorizer) AuthorizeAdmission(ctx context.Context, inv *invitesv1alpha1.Invitation, inviter invitesv1alpha1.Inviter, adm Admission) (Decision, error) {
	policies, err := a.policies(ctx)
	if err != nil {
		return Decision{}, err
	}
	count := adm.ActiveInvitations == nil && limitsActiveInvitations(policies)
	req, err := a.request(ctx, inv, inviter, count)
	if err != nil {
		return Decision{}, err
	}
	if adm.ActiveInvitations != nil {
		req.ActiveInvitations = *adm.ActiveInvitations
	}
	req.TokenIssuedAt = adm.TokenIssuedAt
	d := EvaluateContext(ctx, policies, req)
	if d.Allowed || !a.AllowRBACDelegation {
		return d, nil
	}
	refusal, err := a.delegationRefusal(ctx, inv, inviter)
	if err != nil {
		return Decision{}, err
	}
	if refusal == "" {
		return Decision{Allowed: true, AllowedBy: DelegationName, Candidates: d.Candidates}, nil
	}
	d.Delegation = refusal
	return d, nil
}

// LimitsActiveInvitations says whether any policy limits active invitations per inviter,
// so that admission knows whether it must count them.
func (a *Authorizer) LimitsActiveInvitations(ctx context.Context) (bool, error) {
	policies, err := a.policies(ctx)
	if err != nil {
		return false, err
	}
	return limitsActiveInvitations(policies), nil
}

// limitsActiveInvitations says whether any policy limits active invitations per inviter:
// only then is it worth counting them, which means reading all of the inviter's.
func limitsActiveInvitations(policies []*Compiled) bool {
	for _, p := range policies {
		if l := p.Policy.Spec.Limits; l != nil && l.MaxActiveInvitationsPerInviter != nil {
			return true
		}
	}
	return false
}

func (a *Authorizer) request(ctx context.Context, inv *invitesv1alpha1.Invitation, inviter invitesv1alpha1.Inviter, count bool) (Request, error) {
	req := Request{Invitation: inv, Inviter: inviter, Namespaces: map[string]*corev1.Namespace{}, DefaultExpiresAfter: a.DefaultExpiresAfter}
	for _, name := range InvolvedNamespaces(inv) {
		ns := &corev1.Namespace{}
		err := a.Reader.Get(ctx, client.ObjectKey{Name: name}, ns)
		if apierrors.IsNotFound(err) {
			continue
		}
		if err != nil {
			return req, err
		}
		req.Namespaces[name] = ns
	}
	if !count {
		return req, nil
	}
	active, err := a.activeInvitations(ctx, inv, inviter.Username)
	req.ActiveInvitations = active
	return req, err
}

// activeInvitations counts the inviter's other invitations that are Pending or Active
// (a new one has no phase yet and counts as pending).
func (a *Authorizer) activeInvitations(ctx context.Context, inv *invitesv1alpha1.Invitation, username string) (int, error) {
	var list invitesv1alpha1.InvitationList
	// Only phases are read: the cache's objects need not be copied.
	if err := a.Reader.List(ctx, &list, client.MatchingFields{InviterIndex: username}, client.UnsafeDisableDeepCopy); err != nil {
		return 0, err
	}
	return CountActive(list.Items, inv, nil), nil
}

// CountActive counts the invitations that are Pending or Active (one with no phase yet is
// new, and pending), leaving out inv itself and those skip says to.
func CountActive(items []invitesv1alpha1.Invitation, inv *invitesv1alpha1.Invitation, skip func(*invitesv1alpha1.Invitation) bool) int {
	count := 0
	for i := range items {
		other := &items[i]
		if (other.Namespace == inv.Namespace && other.Name == inv.Name) || (skip != nil && skip(other)) {
			continue
		}
		if IsOpen(other) {
			count++
		}
	}
	return count
}

// IsOpen says whether an invitation counts against maxActiveInvitationsPerInviter.
func IsOpen(inv *invitesv1alpha1.Invitation) bool {
	switch inv.Status.Phase {
	case "", invitesv1alpha1.PhasePending, invitesv1alpha1.PhaseActive:
		return true
	}
	return false
}

// policies returns every policy compiled, compiling each generation only once.
func (a *Authorizer) policies(ctx context.Context) ([]*Compiled, error) {
	var list invitesv1alpha1.RoleGrantPolicyList
	if err := a.Reader.List(ctx, &list); err != nil {
		return nil, err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.compiled == nil {
		a.compiled = map[types.UID]*Compiled{}
	}
	seen := make(map[types.UID]bool, len(list.Items))
	out := make([]*Compiled, 0, len(list.Items))
	for i := range list.Items {
		rgp := &list.Items[i]
		seen[rgp.UID] = true
		c, ok := a.compiled[rgp.UID]
		if !ok || c.Policy.Generation != rgp.Generation {
			c = Compile(rgp.DeepCopy())
			a.compiled[rgp.UID] = c
		}
		out = append(out, c)
	}
	for uid := range a.compiled {
		if !seen[uid] {
			delete(a.compiled, uid)
		}
	}
	return out, nil
}

// delegationRefusal asks the API server whether the inviter could make each binding
// themselves: create the binding and bind the role. Kubernetes would also let someone who
// already holds every permission of a role bind it without the bind verb; that path is not
// followed here, so such an inviter needs a policy (the safe direction).
func (a *Authorizer) delegationRefusal(ctx context.Context, inv *invitesv1alpha1.Invitation, inviter invitesv1alpha1.Inviter) (string, error) {
	for i, g := range inv.Spec.Grants {
		if g.IDPGroup != "" {
			// RBAC has no verb for "may add people to this identity provider group".
			return fmt.Sprintf("grants[%d]: idpGroup %s cannot be delegated through RBAC, which has no right for identity provider groups; "+
				"a RoleGrantPolicy must list it in grantableIDPGroups", i, g.IDPGroup), nil
		}
		for _, attrs := range bindingAttributes(inv.Namespace, g) {
			if refusal, err := a.refuseAttributes(ctx, inviter, attrs, fmt.Sprintf("grants[%d]", i)); refusal != "" || err != nil {
				return refusal, err
			}
		}
	}
	if inv.Spec.Upgrade != invitesv1alpha1.UpgradeReplace {
		return "", nil
	}
	for _, attrs := range replaceAttributes(inv) {
		if refusal, err := a.refuseAttributes(ctx, inviter, attrs, "upgrade: Replace"); refusal != "" || err != nil {
			return refusal, err
		}
	}
	return "", nil
}

// refuseAttributes says why the inviter may not do what attrs describe, or "" when they may.
func (a *Authorizer) refuseAttributes(ctx context.Context, inviter invitesv1alpha1.Inviter, attrs authorizationv1.ResourceAttributes, what string) (string, error) {
	allowed, err := a.Can(ctx, inviter, attrs)
	if err != nil || allowed {
		return "", err
	}
	return fmt.Sprintf("%s: %s may not %s", what, inviter.Username, describeAttributes(attrs)), nil
}

// replaceAttributes are the rights that removing what upgrade: Replace removes needs:
// delete RoleBindings in every namespace a grant lands in, and ClusterRoleBindings when a
// grant is cluster-wide (bindings.ReplaceOthers removes the person's bindings there).
func replaceAttributes(inv *invitesv1alpha1.Invitation) []authorizationv1.ResourceAttributes {
	var out []authorizationv1.ResourceAttributes
	for _, ns := range GrantNamespaces(inv) {
		out = append(out, authorizationv1.ResourceAttributes{Verb: "delete", Group: rbacv1.GroupName, Resource: "rolebindings", Namespace: ns})
	}
	for _, g := range inv.Spec.Grants {
		if g.ClusterWide {
			return append(out, authorizationv1.ResourceAttributes{Verb: "delete", Group: rbacv1.GroupName, Resource: "clusterrolebindings"})
		}
	}
	return out
}

// bindingAttributes are the two rights making a grant's binding needs: create the binding,
// and bind its role.
func bindingAttributes(invNamespace string, g invitesv1alpha1.Grant) []authorizationv1.ResourceAttributes {
	roleResource, roleName := "clusterroles", g.ClusterRole
	if g.Role != "" {
		roleResource, roleName = "roles", g.Role
	}
	if g.ClusterWide {
		return []authorizationv1.ResourceAttributes{
			{Verb: "create", Group: rbacv1.GroupName, Resource: "clusterrolebindings"},
			{Verb: "bind", Group: rbacv1.GroupName, Resource: roleResource, Name: roleName},
		}
	}
	ns := g.LandsIn(invNamespace)
	return []authorizationv1.ResourceAttributes{
		{Verb: "create", Group: rbacv1.GroupName, Resource: "rolebindings", Namespace: ns},
		{Verb: "bind", Group: rbacv1.GroupName, Resource: roleResource, Name: roleName, Namespace: ns},
	}
}

func describeAttributes(a authorizationv1.ResourceAttributes) string {
	s := a.Verb + " " + a.Resource
	if a.Name != "" {
		s += " " + a.Name
	}
	if a.Namespace != "" {
		s += " in namespace " + a.Namespace
	}
	return s
}

// Can asks the API server whether the user may do what attrs describe, remembering the
// answer for answerTTL.
func (a *Authorizer) Can(ctx context.Context, inviter invitesv1alpha1.Inviter, attrs authorizationv1.ResourceAttributes) (bool, error) {
	a.answersOnce.Do(func() { a.answers = utilcache.NewLRUExpireCache(4096) })
	key := answerKey(inviter, attrs)
	if allowed, ok := a.answers.Get(key); ok {
		return allowed.(bool), nil
	}
	allowed, err := a.ask(ctx, inviter, attrs)
	if err == nil {
		a.answers.Add(key, allowed, answerTTL)
	}
	return allowed, err
}

// answerKey identifies a question completely: who (with every group and extra) and what.
func answerKey(inviter invitesv1alpha1.Inviter, attrs authorizationv1.ResourceAttributes) string {
	return fmt.Sprintf("%q %q %q %v %+v", inviter.Username, inviter.UID, inviter.Groups, inviter.Extra, attrs)
}

func (a *Authorizer) ask(ctx context.Context, inviter invitesv1alpha1.Inviter, attrs authorizationv1.ResourceAttributes) (bool, error) {
	extra := make(map[string]authorizationv1.ExtraValue, len(inviter.Extra))
	for k, v := range inviter.Extra {
		extra[k] = authorizationv1.ExtraValue(v)
	}
	sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
		User: inviter.Username, UID: inviter.UID, Groups: inviter.Groups, Extra: extra, ResourceAttributes: &attrs,
	}}
	if err := a.Writer.Create(ctx, sar); err != nil {
		return false, fmt.Errorf("asking the API server whether %s may %s: %w", inviter.Username, describeAttributes(attrs), err)
	}
	return sar.Status.Allowed && !sar.Status.Denied, nil
}
