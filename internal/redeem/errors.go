package redeem

import "net/http"

// Error is a refusal with the HTTP status and the machine-readable code the API promises.
type Error struct {
	Status  int    `json:"-"`
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func refuse(status int, code, message string) *Error {
	return &Error{Status: status, Code: code, Message: message}
}

var (
	errMalformed       = refuse(http.StatusBadRequest, "malformed", `the body must be JSON: {"token": "..."}`)
	errUnauthenticated = refuse(http.StatusUnauthorized, "unauthenticated", "send an ID token or another credential the cluster accepts as Authorization: Bearer <credential>")
	errUnknownToken    = refuse(http.StatusNotFound, "unknown_token", "no invitation has this token")
	errRevoked         = refuse(http.StatusGone, "revoked", "the invitation was revoked")
	errDeclined        = refuse(http.StatusGone, "declined", "the invitation was declined")
	errNotDeclinable   = refuse(http.StatusBadRequest, "not_declinable", "only an invitation for a specific email address can be declined")
	errExpired         = refuse(http.StatusGone, "expired", "the invitation has expired")
	errExhausted       = refuse(http.StatusGone, "exhausted", "every use of the invitation has been redeemed")
	errGrantsRemoved   = refuse(http.StatusGone, "grants_removed",
		"you redeemed this invitation before, and the grants you hold from it were removed or changed since; ask for a new invitation")
	errInProgress = refuse(http.StatusConflict, "in_progress",
		"your redemption of this invitation is still being made; try again in a moment")
	errBindingConflict = refuse(http.StatusConflict, "binding_conflict",
		"a role binding this invitation needs exists and was not made by rolecall, or changed while it was being made; nothing was granted")
	errEmailUnverified = refuse(http.StatusForbidden, "email_unverified", "this invitation is for a specific email address; sign in with an account whose email is verified")
	errEmailMismatch   = refuse(http.StatusForbidden, "email_mismatch", "this invitation is for another email address")
	errPolicyDenied    = refuse(http.StatusForbidden, "policy_denied", "the person who invited you may no longer grant these roles; ask them to check with the cluster administrators")
	errRateLimited     = refuse(http.StatusTooManyRequests, "rate_limited", "too many failed or refused attempts from this client; try again later")
	errUserRateLimited = refuse(http.StatusTooManyRequests, "rate_limited", "too many refused attempts with this credential; try again later")
	errLocked          = refuse(http.StatusTooManyRequests, "locked", "too many wrong tokens for this invitation came from this client; try again later")
	errTooLarge        = refuse(http.StatusRequestEntityTooLarge, "too_large", "the request body is too large")
	errUnavailable     = refuse(http.StatusServiceUnavailable, "unavailable", "the cluster cannot be reached right now; try again in a moment")
	errInternal        = refuse(http.StatusInternalServerError, "internal", "something went wrong; nothing was granted")
)
