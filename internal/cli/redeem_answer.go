package cli

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// redemptionAnswer is the redemption server's answer, kept as received for -o json.
type redemptionAnswer struct {
	status     int
	statusText string
	retryAfter string
	body       []byte
}

// redemption is a successful answer's body.
type redemption struct {
	Invitation     string      `json:"invitation"`
	Namespace      string      `json:"namespace"`
	User           string      `json:"user"`
	Groups         []string    `json:"groups"`
	Grants         []grantMade `json:"grants"`
	GrantsExpireAt *time.Time  `json:"grantsExpireAt,omitempty"`
	RedirectURL    string      `json:"redirectURL,omitempty"`
}

// grantMade is one binding a redemption made (or found).
type grantMade struct {
	Kind      string `json:"kind"`
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	RoleRef   string `json:"roleRef"`
}

// refusalBody is the one shape of every error the redemption server answers.
type refusalBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (a *redemptionAnswer) succeeded() bool {
	return a.status == http.StatusOK || a.status == http.StatusCreated
}

// refusal is the one-line reason a redemption failed, or nil when it succeeded.
func (a *redemptionAnswer) refusal() error {
	if a.succeeded() {
		return nil
	}
	var body refusalBody
	if err := json.Unmarshal(a.body, &body); err != nil || body.Message == "" {
		return fmt.Errorf("cannot redeem: the redemption server answered %s", a.statusText)
	}
	detail := fmt.Sprintf("%d %s", a.status, body.Code)
	if a.status == http.StatusTooManyRequests && a.retryAfter != "" {
		detail += "; retry after " + a.retryAfter + "s"
	}
	if a.status == http.StatusUnauthorized {
		return fmt.Errorf("cannot redeem: the redemption server does not accept your kubeconfig's credential: %s (%s)", body.Message, detail)
	}
	return fmt.Errorf("cannot redeem: %s (%s)", body.Message, detail)
}

// print says what the person now has, or returns why not.
func (a *redemptionAnswer) print(out io.Writer) error {
	if err := a.refusal(); err != nil {
		return err
	}
	var r redemption
	if err := json.Unmarshal(a.body, &r); err != nil {
		return fmt.Errorf("the redemption server's answer is not a redemption: %w", err)
	}
	var b strings.Builder
	if a.status == http.StatusCreated {
		fmt.Fprintf(&b, "Redeemed invitation %q in namespace %q as %s. You now have:\n", r.Invitation, r.Namespace, r.User)
	} else {
		fmt.Fprintf(&b, "You had already redeemed invitation %q in namespace %q as %s. You have:\n", r.Invitation, r.Namespace, r.User)
	}
	for _, g := range r.Grants {
		fmt.Fprintf(&b, "  %s %s (%s %s)\n", g.RoleRef, where(g), g.Kind, g.Name)
	}
	if r.GrantsExpireAt != nil {
		fmt.Fprintf(&b, "These roles expire at %s.\n", r.GrantsExpireAt.UTC().Format(time.RFC3339))
	}
	if r.RedirectURL != "" {
		fmt.Fprintf(&b, "Continue at %s\n", r.RedirectURL)
	}
	_, err := io.WriteString(out, b.String())
	return err
}

func where(g grantMade) string {
	if g.Namespace == "" {
		return "cluster-wide"
	}
	return "in namespace " + g.Namespace
}
