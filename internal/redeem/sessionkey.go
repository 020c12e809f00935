package redeem

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rolecall/rolecall/internal/seal"
)

// SessionKey returns the key that seals sign-in cookies. Every replica must use the same
// one (a sign-in may start on one and come back to another), so it lives in a Secret that
// the first replica to need it creates.
func SessionKey(ctx context.Context, c client.Client, name client.ObjectKey) ([]byte, error) {
	return seal.LoadKey(ctx, c, name, "signin-key")
}
