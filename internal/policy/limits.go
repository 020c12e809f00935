package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// refuseLimits checks each limit of the policy, in the order they are documented.
func (p *Compiled) refuseLimits(req Request) string {
	limits := p.Policy.Spec.Limits
	if limits == nil {
		return ""
	}
	spec := req.Invitation.Spec
	checks := []func() string{
		func() string {
			expiresAfter := req.expiresAfter()
			if limits.MaxExpiresAfter != nil && expiresAfter > limits.MaxExpiresAfter.Duration {
				return fmt.Sprintf("expiresAfter %s exceeds the limit of %s", expiresAfter, limits.MaxExpiresAfter.Duration)
			}
			return ""
		},
		func() string {
			if limits.MaxUses != nil && spec.MaxUses > *limits.MaxUses {
				return fmt.Sprintf("maxUses %d exceeds the limit of %d", spec.MaxUses, *limits.MaxUses)
			}
			return ""
		},
		func() string {
			if limits.MaxGrantDuration == nil {
				return ""
			}
			if spec.GrantDuration == nil {
				return fmt.Sprintf("grantDuration is required (at most %s)", limits.MaxGrantDuration.Duration)
			}
			if spec.GrantDuration.Duration > limits.MaxGrantDuration.Duration {
				return fmt.Sprintf("grantDuration %s exceeds the limit of %s", spec.GrantDuration.Duration, limits.MaxGrantDuration.Duration)
			}
			return ""
		},
		func() string {
			if limits.RequireEmail && spec.Email == "" {
				return "an email is required: only private invitations are allowed"
			}
			return ""
		},
		func() string { return refuseEmailDomain(limits.AllowedEmailDomains, spec.Email) },
		func() string {
			if len(limits.TokenTypes) > 0 && !slices.Contains(limits.TokenTypes, spec.TokenType) {
				return fmt.Sprintf("tokenType %s is not allowed (allowed: %v)", spec.TokenType, limits.TokenTypes)
			}
			return ""
		},
		func() string {
			if limit := limits.MaxActiveInvitationsPerInviter; limit != nil && req.ActiveInvitations >= int(*limit) {
				return fmt.Sprintf("the inviter already has %d active invitations (limit %d)", req.ActiveInvitations, *limit)
			}
			return ""
		},
		func() string { return refuseLifetime(limits.MaxLifetime, req) },
	}
	for _, check := range checks {
		if reason := check(); reason != "" {
			return reason
		}
	}
	return ""
}

// refuseLifetime says why the token the request leaves in force would outlive the
// invitation's allowed life: a resend restarts the token's clock, but not the invitation's.
func refuseLifetime(maxLifetime *metav1.Duration, req Request) string {
	if maxLifetime == nil || req.TokenIssuedAt.IsZero() {
		return ""
	}
	created := req.Invitation.CreationTimestamp.Time
	if created.IsZero() {
		created = req.TokenIssuedAt
	}
	end := created.Add(maxLifetime.Duration)
	tokenEnd := req.TokenIssuedAt.Add(req.expiresAfter())
	if !tokenEnd.After(end) {
		return ""
	}
	return fmt.Sprintf("the token would stay valid until %s, past the invitation's maxLifetime of %s from its creation (until %s); "+
		"shorten expiresAfter or create a new invitation",
		tokenEnd.UTC().Format(time.RFC3339), maxLifetime.Duration, end.UTC().Format(time.RFC3339))
}

// refuseEmailDomain compares the domain case-insensitively, as mail does.
func refuseEmailDomain(allowed []string, email string) string {
	if len(allowed) == 0 || email == "" {
		return ""
	}
	domain := strings.ToLower(email[strings.LastIndex(email, "@")+1:])
	for _, d := range allowed {
		if strings.ToLower(d) == domain {
			return ""
		}
	}
	return fmt.Sprintf("email domain %s is not allowed (allowed: %s)", domain, strings.Join(allowed, ", "))
}
