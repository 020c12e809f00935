package delivery

import "context"

// Webhook delivers invites as signed JSON to a chat or ticket system, which passes the link
// on to the person. The body is an Invite; see SignedPoster for the signature.
type Webhook struct {
	Poster *SignedPoster
}

// Channel is "webhook".
func (w *Webhook) Channel() string { return "webhook" }

// Send posts the invite.
func (w *Webhook) Send(ctx context.Context, invite Invite) error {
	return w.Poster.Post(ctx, struct {
		Type string `json:"type"`
		Invite
	}{Type: "invitation", Invite: invite})
}
