package redeem

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/policy"
)

// Result is the body of a successful redemption.
type Result struct {
	Invitation     string          `json:"invitation"`
	Namespace      string          `json:"namespace"`
	User           string          `json:"user"`
	Groups         []string        `json:"groups"`
	Grants         []bindings.Made `json:"grants"`
	GrantsExpireAt *metav1.Time    `json:"grantsExpireAt,omitempty"`
	RedirectURL    string          `json:"redirectURL,omitempty"`

	created bool
	tokenID string
}

// Redeem gives the user the invitation's grants, or says why not.
//
// Grants come about in one way only: a use claimed now, on the latest version of an open
// invitation, by a person whose credential, email and inviter's policy were just checked.
// A person who already holds the grants is told so from live state and nothing is bound;
// one whose grants were removed gets them back only through a new invitation.
func (s *Server) Redeem(ctx context.Context, submitted string, user identity.User) (Result, *Error) {
	inv, err := s.lookup(ctx, submitted)
	if err != nil {
		return Result{}, s.failure(err)
	}
	result := Result{Invitation: inv.Name, Namespace: inv.Namespace, User: user.Username, Groups: user.Groups, tokenID: inv.Status.TokenID}
	if refusal := checkEmail(inv, user); refusal != nil {
		return result, refusal
	}
	// The inviter's right is checked again now: policies and RBAC may have changed since
	// the invitation was admitted.
	if err := s.checkPolicy(ctx, inv); err != nil {
		return result, s.failure(err)
	}
	held, err := s.holdsLive(ctx, inv, user.Username)
	if err != nil {
		return result, s.failure(err)
	}
	if held {
		return s.answer(result, inv, user.Username, false), nil
	}
	now := s.Clock.Now()
	inv, outcome, err := s.claim(ctx, inv, user.Username, now)
	if err != nil {
		return result, s.failure(err)
	}
	if outcome == alreadyRedeemed {
		return s.answer(result, inv, user.Username, false), nil
	}
	if refusal := s.bind(ctx, inv, user.Username, now); refusal != nil {
		return result, refusal
	}
	return s.answer(result, inv, user.Username, true), nil
}

// holdsLive says whether the user holds the invitation's grants now. The cache answers
// "no" for everyone who is new, which is most people; a "yes" is confirmed with the API
// server, because the cache may still show a binding an administrator just deleted.
func (s *Server) holdsLive(ctx context.Context, inv *invitesv1alpha1.Invitation, username string) (bool, error) {
	held, err := bindings.Holds(ctx, s.Reader, s.Sealer, inv, username)
	if err != nil || !held {
		return false, err
	}
	return bindings.Holds(ctx, s.Live, s.Sealer, inv, username)
}

// bind makes the grants of a use just claimed. If that fails, the bindings made so far are
// removed and the use is given back, so a refusal leaves nothing behind.
func (s *Server) bind(ctx context.Context, inv *invitesv1alpha1.Invitation, username string, claimedAt time.Time) *Error {
	key := client.ObjectKeyFromObject(inv)
	if s.AfterClaim != nil {
		if err := s.AfterClaim(); err != nil {
			return s.failure(err)
		}
	}
	// Bounded well inside the controller's grace for pending claims, so the controller
	// never gives back a use whose bindings are still being made.
	bindCtx, cancel := context.WithTimeout(ctx, bindTimeout)
	defer cancel()
	_, err := bindings.Ensure(bindCtx, s.Live, s.Sealer, inv, username, claimedAt)
	if err != nil {
		undoCtx, cancelUndo := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
		defer cancelUndo()
		if removeErr := bindings.Remove(undoCtx, s.Live, s.Sealer, inv, username); removeErr != nil {
			s.Log.Error(removeErr, "removing the bindings of a failed redemption", "invitation", key.String())
		}
		if giveErr := s.giveBack(undoCtx, inv, username); giveErr != nil {
			s.Log.Error(giveErr, "giving back a use; the controller will settle it", "invitation", key.String())
		}
		if errors.Is(err, bindings.ErrConflict) {
			return errBindingConflict
		}
		return s.failure(err)
	}
	if inv.Spec.Upgrade == invitesv1alpha1.UpgradeReplace {
		// The new grants exist; only now do the earlier ones go, so the person is never
		// left with neither.
		if _, err := bindings.ReplaceOthers(ctx, s.Live, s.Sealer, inv, username); err != nil {
			s.Log.Error(err, "removing earlier grants for upgrade: Replace", "invitation", key.String())
		}
	}
	// The bindings exist: the redemption is complete. Its pending entry is cleared a moment
	// later, with those of everyone else who finished meanwhile (see finish).
	s.finish(key, username, claimedAt)
	s.Recorder.Eventf(inv, nil, corev1.EventTypeNormal, "Redeemed", "Redeem", "redeemed by %s", username)
	return nil
}

// answer fills in what the person holds from the invitation.
func (s *Server) answer(result Result, inv *invitesv1alpha1.Invitation, username string, created bool) Result {
	result.Grants, result.created = bindings.Describe(inv, username), created
	if at := grantsExpireAt(inv, username); at != nil {
		result.GrantsExpireAt = &metav1.Time{Time: *at}
	}
	result.RedirectURL = s.allowedRedirect(inv.Spec.RedirectURL)
	return result
}

// failure turns an error into the refusal it stands for: 503 when the API server could
// not be reached or could not answer in time (the person may simply retry), else 500.
func (s *Server) failure(err error) *Error {
	var refusal *Error
	if errors.As(err, &refusal) {
		return refusal
	}
	if unreachable(err) {
		return errUnavailable
	}
	s.Log.Error(err, "redemption failed")
	return errInternal
}

// unreachable says whether err means "no answer from the API server" rather than an answer.
// An answer is a Status; anything else from the client is the transport failing: a refused
// or dropped connection, a lost HTTP/2 connection, a body cut short, a deadline.
func unreachable(err error) bool {
	var status apierrors.APIStatus
	if errors.As(err, &status) {
		return apierrors.IsServerTimeout(err) || apierrors.IsTimeout(err) || apierrors.IsServiceUnavailable(err) ||
			apierrors.IsTooManyRequests(err) || apierrors.IsUnexpectedServerError(err) || status.Status().Code >= http.StatusBadGateway
	}
	var urlErr *url.Error
	var netErr net.Error
	var errno syscall.Errno
	return errors.As(err, &urlErr) || errors.As(err, &netErr) || errors.As(err, &errno) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		// HTTP/2's connection errors are not exported; client-go passes on their text.
		strings.Contains(err.Error(), "http2:")
}

// checkEmail: a private invitation is for one verified address, compared case-insensitively.
func checkEmail(inv *invitesv1alpha1.Invitation, user identity.User) *Error {
	if inv.Spec.Email == "" {
		return nil
	}
	if user.Email == "" || !user.EmailVerified {
		return errEmailUnverified
	}
	if !identity.EmailsMatch(user.Email, inv.Spec.Email) {
		return errEmailMismatch
	}
	return nil
}

func (s *Server) checkPolicy(ctx context.Context, inv *invitesv1alpha1.Invitation) error {
	if inv.Spec.Inviter == nil {
		return errPolicyDenied
	}
	decision, err := s.Authorizer.Authorize(ctx, inv, *inv.Spec.Inviter)
	if err != nil {
		return err
	}
	if !decision.Allowed {
		s.Recorder.Eventf(inv, nil, corev1.EventTypeWarning, "Denied", "Redeem", "a redemption was refused: %s", decision.Message(*inv.Spec.Inviter))
		return errPolicyDenied
	}
	// The policy's maxLifetime holds whatever status says about the token's expiry.
	if end, capped := policy.LifetimeEnd(inv, decision); capped && !s.Clock.Now().Before(end) {
		return errExpired
	}
	return nil
}

// grantsExpireAt is when the user's grants end, as the invitation records their redemption.
func grantsExpireAt(inv *invitesv1alpha1.Invitation, user string) *time.Time {
	if i := slices.IndexFunc(inv.Status.Redemptions, func(r invitesv1alpha1.Redemption) bool { return r.User == user }); i >= 0 {
		if at := inv.Status.Redemptions[i].GrantsExpireAt; at != nil {
			return &at.Time
		}
	}
	return nil
}

// allowedRedirect returns the URL only when its origin is on the allowlist: never an
// open redirect.
func (s *Server) allowedRedirect(raw string) string {
	if raw == "" {
		return ""
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") || u.User != nil {
		return ""
	}
	origin := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, allowed := range s.AllowedRedirectOrigins {
		if strings.ToLower(strings.TrimRight(allowed, "/")) == origin {
			return raw
		}
	}
	return ""
}
