package identity

import (
	"context"
	"fmt"

	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// TokenReview asks the API server about any other bearer credential it accepts (service
// account tokens, webhook-authenticated tokens...). The API server computes the user
// itself, so there is nothing to drift.
type TokenReview struct {
	Client client.Writer
	// Audiences, when set, are the audiences the token must be meant for.
	Audiences []string
}

// Authenticate implements Authenticator.
func (t *TokenReview) Authenticate(ctx context.Context, credential string) (User, error) {
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: credential, Audiences: t.Audiences}}
	if err := t.Client.Create(ctx, review); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return User{}, fmt.Errorf("asking the API server to review a token: %w", err)
		}
		return User{}, fmt.Errorf("%w: asking the API server to review a token: %v", ErrUnavailable, err)
	}
	if !review.Status.Authenticated {
		return User{}, fmt.Errorf("%w: %s", ErrUnauthenticated, review.Status.Error)
	}
	u := review.Status.User
	extra := make(map[string][]string, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = v
	}
	return User{Username: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}, nil
}
