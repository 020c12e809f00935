package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// redemptionAnswer is the redemption server's answer, kept as received for -o json.
type redemptionAnswer struct {
	status      int
	statusText  string
	retryAfter  string
	contentType string
	body        []byte
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

// errNotRolecall marks an answer that rolecall's redemption server does not give: a
// proxy's error page, a redirect, or a server that only looks like it.
var errNotRolecall = errors.New("not an answer of rolecall's redemption server")

// refused is a refusal in the redemption server's own words.
type refused struct{ message string }

func (r refused) Error() string { return r.message }

func (a *redemptionAnswer) succeeded() bool {
	return a.status == http.StatusOK || a.status == http.StatusCreated
}

// decode reads the answer as rolecall's redemption server gives it: JSON, and either a
// redemption that names the invitation, the user and the bindings (200, 201) or a refusal
// with a code and a message. Anything else is an error, never a success: an answer that
// does not say what was granted does not mean the roles are yours.
func (a *redemptionAnswer) decode() (*redemption, error) {
	mediaType, _, err := mime.ParseMediaType(a.contentType)
	if err != nil || mediaType != "application/json" {
		return nil, a.notRolecall(fmt.Sprintf("its Content-Type is %q, not application/json", a.contentType))
	}
	if a.succeeded() {
		var r redemption
		if err := json.Unmarshal(a.body, &r); err != nil {
			return nil, a.notRolecall("it is not a redemption: " + err.Error())
		}
		if missing := r.missing(); missing != "" {
			return nil, a.notRolecall("it is not a redemption: " + missing)
		}
		return &r, nil
	}
	var body refusalBody
	if err := json.Unmarshal(a.body, &body); err != nil || body.Code == "" || body.Message == "" {
		return nil, a.notRolecall("it is neither a redemption nor a refusal")
	}
	return nil, a.refusal(body)
}

// fromRolecall says whether decode's outcome is one of rolecall's answers, which -o json
// prints as received.
func (a *redemptionAnswer) fromRolecall(err error) bool {
	return !errors.Is(err, errNotRolecall)
}

// notRolecall explains an answer rolecall does not give, with its status.
func (a *redemptionAnswer) notRolecall(why string) error {
	if a.succeeded() {
		return fmt.Errorf("cannot redeem: the redemption server answered %s, but %s; nothing says the roles are yours: %w", a.statusText, why, errNotRolecall)
	}
	return fmt.Errorf("cannot redeem: the redemption server answered %s: %w", a.statusText, errNotRolecall)
}

// missing names what a redemption must say and this one does not, or "".
func (r *redemption) missing() string {
	switch {
	case r.Invitation == "" || r.Namespace == "":
		return "no invitation"
	case r.User == "":
		return "no user"
	case len(r.Grants) == 0:
		return "no grants"
	}
	for _, g := range r.Grants {
		if (g.Kind != "RoleBinding" && g.Kind != "ClusterRoleBinding") || g.Name == "" || g.RoleRef == "" {
			return "a grant that is no binding"
		}
	}
	return ""
}

// refusal is the one-line reason a redemption was refused.
func (a *redemptionAnswer) refusal(body refusalBody) error {
	detail := fmt.Sprintf("%d %s", a.status, body.Code)
	if a.status == http.StatusTooManyRequests && a.retryAfter != "" {
		detail += "; retry after " + a.retryAfter + "s"
	}
	if a.status == http.StatusUnauthorized {
		return refused{fmt.Sprintf("cannot redeem: the redemption server does not accept your kubeconfig's credential: %s (%s)", body.Message, detail)}
	}
	return refused{fmt.Sprintf("cannot redeem: %s (%s)", body.Message, detail)}
}

// print says what the person now has.
func (a *redemptionAnswer) print(out io.Writer, r *redemption) error {
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
