package identity

import (
	"context"
	"crypto/sha256"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	authenticationv1 "k8s.io/api/authentication/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	utilcache "k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// +kubebuilder:rbac:groups=authentication.k8s.io,resources=tokenreviews,verbs=create

// DefaultTokenReviewTTL is how long a TokenReview answer is remembered. It is short: a
// deleted service account or a revoked token stops working after at most this long, while a
// client repeating one credential (a retry loop, or a flood of refused redemptions) costs
// the API server one review per TTL instead of one per request. kube-apiserver's own
// webhook token authenticator remembers answers for two minutes.
const DefaultTokenReviewTTL = 10 * time.Second

// reviewTimeout bounds one review, which may be shared by several requests.
const reviewTimeout = 30 * time.Second

// tokenReviewCacheSize bounds the remembered answers: one entry is a hash and a user.
const tokenReviewCacheSize = 4096

// TokenReview asks the API server about any other bearer credential it accepts (service
// account tokens, webhook-authenticated tokens...). The API server computes the user
// itself, so there is nothing to drift.
type TokenReview struct {
	Client client.Writer
	// Audiences, when set, are the audiences the token must be meant for: with
	// Audiences: ["rolecall"], the API server accepts a token minted by
	// `kubectl create token SA --audience rolecall` and refuses one meant for itself. Unset,
	// the API server's own audiences apply.
	Audiences []string
	// CacheTTL is how long an answer is remembered: zero means DefaultTokenReviewTTL, a
	// negative value remembers nothing.
	CacheTTL time.Duration
	// Clock times the remembered answers; nil means the real clock.
	Clock clock.Clock

	once     sync.Once
	answers  *utilcache.LRUExpireCache
	inflight singleflight.Group
}

// reviewAnswer is what the API server said about a credential: a user, or that it does not
// accept it. Failures to get an answer are never remembered.
type reviewAnswer struct {
	user   User
	reason string
}

// Authenticate implements Authenticator. Answers are remembered for CacheTTL under a hash of
// the credential (never the credential itself), and concurrent requests with the same
// credential share one review.
func (t *TokenReview) Authenticate(ctx context.Context, credential string) (User, error) {
	t.once.Do(t.init)
	key := sha256.Sum256([]byte(credential))
	if t.answers != nil {
		if v, ok := t.answers.Get(key); ok {
			return v.(reviewAnswer).result()
		}
	}
	v, err, _ := t.inflight.Do(string(key[:]), func() (any, error) {
		// Shared by every request waiting on this credential: one of them going away
		// must not fail the others.
		shared, cancel := context.WithTimeout(context.WithoutCancel(ctx), reviewTimeout)
		defer cancel()
		answer, err := t.review(shared, credential)
		if err == nil && t.answers != nil {
			t.answers.Add(key, answer, t.ttl())
		}
		return answer, err
	})
	if err != nil {
		return User{}, err
	}
	return v.(reviewAnswer).result()
}

func (t *TokenReview) init() {
	if t.ttl() <= 0 {
		return
	}
	if t.Clock == nil {
		t.Clock = clock.RealClock{}
	}
	t.answers = utilcache.NewLRUExpireCacheWithClock(tokenReviewCacheSize, t.Clock)
}

func (t *TokenReview) ttl() time.Duration {
	if t.CacheTTL == 0 {
		return DefaultTokenReviewTTL
	}
	return t.CacheTTL
}

// result is the answer as Authenticate returns it: a copy, since answers are shared.
func (a reviewAnswer) result() (User, error) {
	if a.user.Username == "" {
		return User{}, fmt.Errorf("%w: %s", ErrUnauthenticated, a.reason)
	}
	u := a.user
	u.Groups = slices.Clone(u.Groups)
	u.Extra = maps.Clone(u.Extra)
	return u, nil
}

// review asks the API server once. An answer (authenticated or not) is returned as such;
// anything else is an error.
func (t *TokenReview) review(ctx context.Context, credential string) (reviewAnswer, error) {
	review := &authenticationv1.TokenReview{Spec: authenticationv1.TokenReviewSpec{Token: credential, Audiences: t.Audiences}}
	if err := t.Client.Create(ctx, review); err != nil {
		if apierrors.IsForbidden(err) || apierrors.IsUnauthorized(err) {
			return reviewAnswer{}, fmt.Errorf("asking the API server to review a token: %w", err)
		}
		return reviewAnswer{}, fmt.Errorf("%w: asking the API server to review a token: %v", ErrUnavailable, err)
	}
	if !review.Status.Authenticated || review.Status.User.Username == "" {
		return reviewAnswer{reason: review.Status.Error}, nil
	}
	u := review.Status.User
	extra := make(map[string][]string, len(u.Extra))
	for k, v := range u.Extra {
		extra[k] = v
	}
	return reviewAnswer{user: User{Username: u.Username, UID: u.UID, Groups: u.Groups, Extra: extra}}, nil
}

// TokenReviews asks the API server about a credential the way the redemption server should:
// with an audience, a token minted for that audience alone (worthless to the API server
// itself, and so to anyone it leaks to) is accepted first; a token for the API server's own
// audiences is accepted either way.
func TokenReviews(c client.Writer, audience string) Chain {
	if audience == "" {
		return Chain{&TokenReview{Client: c}}
	}
	return Chain{&TokenReview{Client: c, Audiences: []string{audience}}, &TokenReview{Client: c}}
}
