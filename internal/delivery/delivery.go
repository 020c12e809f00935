// Package delivery hands invitation links to people: by mail over SMTP, or as a signed JSON
// POST to a webhook that a chat or ticket system turns into a message. It also calls the
// identity provider hook that adds people to groups. It knows nothing about Kubernetes:
// the controllers decide when to send and record the outcome.
package delivery

import (
	"context"
	"errors"
	"time"
)

// Invite is what a delivery says: who invited whom to what, until when, and how to accept.
type Invite struct {
	// Name and Namespace identify the Invitation.
	Name      string `json:"invitation"`
	Namespace string `json:"namespace"`
	// Email is the invited person's address (empty for an open invitation).
	Email string `json:"email,omitempty"`
	// Inviter is who invited them. It is always said: spec.hideInviter hides the inviter
	// from the public landing page only, and a message that does not say who sent it would
	// let anyone use the company's sender to send links in its name.
	Inviter string `json:"inviter"`
	// Grants describe the roles offered, one phrase each ("ClusterRole edit in namespace team-a").
	Grants []string `json:"grants"`
	// Replaces, for an invitation with upgrade: Replace, names where accepting removes the
	// person's earlier rolecall grants ("namespace team-a", "the whole cluster").
	Replaces []string `json:"replaces,omitempty"`
	// URL is the landing page that accepts the invitation.
	URL string `json:"url"`
	// Code is the token to type on the home page, for Code tokens only.
	Code string `json:"code,omitempty"`
	// ExpiresAt is when the link stops working.
	ExpiresAt time.Time `json:"expiresAt"`
}

// Sender delivers an invite through one channel.
type Sender interface {
	// Channel names the channel, for status, events and metrics: "email" or "webhook".
	Channel() string
	// Send delivers the invite. An error wrapped by Permanent will not go away by retrying.
	Send(ctx context.Context, invite Invite) error
}

// permanentError marks a failure that retrying cannot fix, such as a recipient the mail
// server refuses or a webhook that answers 4xx.
type permanentError struct{ err error }

func (e permanentError) Error() string { return e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as a failure that retrying will not fix.
func Permanent(err error) error { return permanentError{err: err} }

// IsPermanent says whether err (or an error it wraps) was marked by Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
