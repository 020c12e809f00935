package redeem

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Whatever way the API server goes away, a person is told to retry (503), never that
// something broke (500); an answer that says the request itself is wrong stays a 500.
func TestUnreachableTellsTransportFailuresFromAnswers(t *testing.T) {
	invitations := schema.GroupResource{Group: "invites.rolecall.dev", Resource: "invitations"}
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", &url.Error{Op: "Put", URL: "https://api", Err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}, true},
		{"connection dropped mid-request", &url.Error{Op: "Put", URL: "https://api", Err: errors.New("http2: client connection lost")}, true},
		{"HTTP/2 connection lost reading the body", fmt.Errorf("unexpected error when reading response body. Please retry. Original error: %w", errors.New("http2: client connection lost")), true},
		{"body cut short", fmt.Errorf("reading body: %w", io.ErrUnexpectedEOF), true},
		{"broken pipe", fmt.Errorf("write: %w", syscall.EPIPE), true},
		{"closed connection", fmt.Errorf("read: %w", net.ErrClosed), true},
		{"deadline", fmt.Errorf("client rate limiter Wait returned an error: %w", context.DeadlineExceeded), true},
		{"server timeout", apierrors.NewServerTimeout(invitations, "update", 1), true},
		{"too many requests", apierrors.NewTooManyRequests("slow down", 1), true},
		{"service unavailable", apierrors.NewServiceUnavailable("etcd is gone"), true},
		{"conflict is an answer", apierrors.NewConflict(invitations, "welcome", errors.New("modified")), false},
		{"forbidden is an answer", apierrors.NewForbidden(invitations, "welcome", errors.New("no")), false},
		{"internal error is an answer", apierrors.NewInternalError(errors.New("bug")), false},
		{"our own mistake", errors.New("grants[0]: RoleBinding x exists and binds something else"), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := unreachable(c.err); got != c.want {
				t.Errorf("unreachable(%v) = %v, want %v", c.err, got, c.want)
			}
		})
	}
}

// A refusal passed along as an error (a settle that ran out of attempts) keeps its code.
func TestFailureKeepsARefusalPassedAsAnError(t *testing.T) {
	s := &Server{}
	if got := s.failure(fmt.Errorf("settling: %w", errUnavailable)); got != errUnavailable {
		t.Errorf("failure = %v, want %v", got, errUnavailable)
	}
}
