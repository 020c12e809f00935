package delivery

import "context"

// Membership is one user in one identity provider group, because of one invitation.
type Membership struct {
	// User is the Kubernetes username the grant is bound to.
	User string `json:"user"`
	// Group is the grant's idpGroup.
	Group string `json:"group"`
	// Invitation and Namespace name the invitation that made the grant.
	Invitation string `json:"invitation"`
	Namespace  string `json:"namespace"`
}

// IDPHook asks the identity provider (through a small service the platform team runs) to
// add people to groups and to remove them again, with signed JSON POSTs:
// {"action":"add"|"remove", "user", "group", "invitation", "namespace"}.
type IDPHook struct {
	Poster *SignedPoster
}

// Add asks for the user to join the group.
func (h *IDPHook) Add(ctx context.Context, m Membership) error { return h.call(ctx, "add", m) }

// Remove asks for the user to leave the group.
func (h *IDPHook) Remove(ctx context.Context, m Membership) error { return h.call(ctx, "remove", m) }

func (h *IDPHook) call(ctx context.Context, action string, m Membership) error {
	return h.Poster.Post(ctx, struct {
		Action string `json:"action"`
		Membership
	}{Action: action, Membership: m})
}
