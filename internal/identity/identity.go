// Package identity turns a credential into the Kubernetes user the API server would see for
// it: the same username, groups, UID and extra, computed by the same code. Redemption binds
// roles to that username, so any drift would bind them to the wrong name.
package identity

import (
	"context"
	"errors"
)

// User is who a credential belongs to, as the API server sees them, plus the email claims
// that email-bound invitations need.
type User struct {
	Username string
	UID      string
	Groups   []string
	Extra    map[string][]string
	// Email is the credential's email claim, when it is an OIDC ID token that has one.
	Email string
	// EmailVerified is true only when the token says so explicitly (email_verified: true).
	EmailVerified bool
}

// ErrUnauthenticated means no configured authenticator accepts the credential.
var ErrUnauthenticated = errors.New("the credential is not accepted")

// ErrUnavailable means the credential could not be checked right now (the API server or the
// identity provider could not be reached); the caller should answer 503, not 401.
var ErrUnavailable = errors.New("the credential cannot be checked right now")

// Authenticator checks a bearer credential.
type Authenticator interface {
	// Authenticate returns the user, ErrUnauthenticated, or an error wrapping ErrUnavailable.
	Authenticate(ctx context.Context, credential string) (User, error)
}

// Chain tries each authenticator in turn, like the API server's union of authenticators:
// the first that accepts the credential wins; an unavailable one is reported only if none
// accepts it.
type Chain []Authenticator

// Authenticate implements Authenticator.
func (c Chain) Authenticate(ctx context.Context, credential string) (User, error) {
	var unavailable error
	for _, a := range c {
		u, err := a.Authenticate(ctx, credential)
		switch {
		case err == nil:
			return u, nil
		case errors.Is(err, ErrUnavailable):
			unavailable = err
		case !errors.Is(err, ErrUnauthenticated):
			return User{}, err
		}
	}
	if unavailable != nil {
		return User{}, unavailable
	}
	return User{}, ErrUnauthenticated
}
