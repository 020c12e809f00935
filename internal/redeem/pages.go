package redeem

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"net/http"
	"strings"
	"time"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

// Pages are plain server-rendered HTML: no script, one stylesheet from this server.

//go:embed templates/*.html static/style.css
var assets embed.FS

var pages = parsePages("home.html", "offer.html", "accepted.html", "declined.html", "problem.html")

func parsePages(names ...string) map[string]*template.Template {
	parsed := map[string]*template.Template{}
	for _, name := range names {
		parsed[name] = template.Must(template.New(name).ParseFS(assets, "templates/layout.html", "templates/"+name))
	}
	return parsed
}

// page is what every template gets; each page fills its own part.
type page struct {
	Title    string
	Offer    *offerView
	Accepted *acceptedView
	Declined *declinedView
	Problem  *problemView
}

type offerView struct {
	Token, Invitation, Namespace string
	Grants                       []grantView
	ExpiresAt                    string
	UsesLeft                     int32
	Inviter, Email, CSRF         string
	GrantDuration                string
	CanSignIn                    bool
	// Replaces lists where accepting removes the person's earlier rolecall grants
	// (upgrade: Replace), so nobody gives up a role without being told.
	Replaces []string
}

type grantView struct{ Role, Where string }

type acceptedView struct {
	User, Namespace, Invitation string
	Grants                      []grantView
	GrantsExpireAt              string
	Issuer, ClientID            string
}

type declinedView struct{ Invitation, Namespace, User string }

type problemView struct {
	Status                 int
	Code, Heading, Message string
	SignedInAs             string
}

func (s *Server) renderOffer(w http.ResponseWriter, inv *invitesv1alpha1.Invitation, submitted, csrf string) {
	view := &offerView{
		Token: submitted, Invitation: inv.Name, Namespace: inv.Namespace, Grants: offeredGrants(inv),
		UsesLeft: inv.Spec.MaxUses - inv.Status.Uses, Email: inv.Spec.Email, CSRF: csrf, CanSignIn: s.SignIn != nil,
	}
	if inv.Status.ExpiresAt != nil {
		view.ExpiresAt = humanTime(inv.Status.ExpiresAt.Time)
	}
	if inv.Spec.Inviter != nil && !inv.Spec.HideInviter {
		view.Inviter = inv.Spec.Inviter.Username
	}
	if inv.Spec.GrantDuration != nil {
		view.GrantDuration = inv.Spec.GrantDuration.Duration.String()
	}
	if inv.Spec.Upgrade == invitesv1alpha1.UpgradeReplace {
		view.Replaces = bindings.ReplaceScopes(inv)
	}
	s.render(w, http.StatusOK, "offer.html", page{Title: "You are invited to " + inv.Namespace, Offer: view})
}

func offeredGrants(inv *invitesv1alpha1.Invitation) []grantView {
	views := make([]grantView, 0, len(inv.Spec.Grants))
	for _, g := range inv.Spec.Grants {
		views = append(views, grantView{Role: g.RoleText(), Where: g.Where(inv.Namespace)})
	}
	return views
}

func madeGrants(made []bindings.Made) []grantView {
	views := make([]grantView, 0, len(made))
	for _, m := range made {
		where := "across the whole cluster"
		if m.Namespace != "" {
			where = "in namespace " + m.Namespace
		}
		views = append(views, grantView{Role: strings.Replace(m.RoleRef, "/", " ", 1), Where: where})
	}
	return views
}

func (s *Server) renderAccepted(w http.ResponseWriter, result Result) {
	view := &acceptedView{User: result.User, Namespace: result.Namespace, Invitation: result.Invitation, Grants: madeGrants(result.Grants)}
	if result.GrantsExpireAt != nil {
		view.GrantsExpireAt = humanTime(result.GrantsExpireAt.Time)
	}
	if s.SignIn != nil {
		view.Issuer, view.ClientID = s.SignIn.IssuerURL, s.SignIn.ClientID
	}
	s.render(w, http.StatusOK, "accepted.html", page{Title: "Welcome to " + result.Namespace, Accepted: view})
}

func (s *Server) renderDeclined(w http.ResponseWriter, inv *invitesv1alpha1.Invitation) {
	view := &declinedView{Invitation: inv.Name, Namespace: inv.Namespace, User: inv.Status.DeclinedBy}
	s.render(w, http.StatusOK, "declined.html", page{Title: "Invitation declined", Declined: view})
}

// headings say what happened in a person's words; the message says what to do.
var headings = map[string]string{
	"unknown_token":      "This invitation link does not work",
	"expired":            "This invitation has expired",
	"exhausted":          "This invitation has been used up",
	"revoked":            "This invitation was withdrawn",
	"grants_removed":     "Your access from this invitation was removed",
	"declined":           "This invitation was declined",
	"email_mismatch":     "This invitation is for another account",
	"email_unverified":   "Your email address is not verified",
	"policy_denied":      "This invitation can no longer be honoured",
	"rate_limited":       "Too many attempts",
	"locked":             "Too many attempts",
	"unavailable":        "The cluster cannot be reached right now",
	"not_a_cluster_user": "This account cannot use the cluster",
	"not_declinable":     "This invitation cannot be declined",
	"signin_failed":      "Sign-in did not complete",
	"signin_cancelled":   "Sign-in was cancelled",
	"csrf":               "This form has expired",
}

// hints add what the API message cannot know: the person is in a browser.
var hints = map[string]string{
	"unknown_token":  "Check that you copied the whole link or code. A link stops working when a new one is sent; ask the person who invited you for the latest.",
	"expired":        "Ask the person who invited you to send a new invitation.",
	"exhausted":      "Every place on this invitation has been taken. Ask the person who invited you for another.",
	"email_mismatch": "Sign out of your identity provider, then open your invitation link again and sign in with the account for the invited email address.",
}

func (s *Server) renderProblem(w http.ResponseWriter, refusal *Error, signedInAs string) {
	heading := headings[refusal.Code]
	if heading == "" {
		heading = "Something went wrong"
	}
	message := refusal.Message
	if hint := hints[refusal.Code]; hint != "" {
		message = strings.TrimSuffix(message, ".") + ". " + hint
	}
	view := &problemView{Status: refusal.Status, Code: refusal.Code, Heading: heading, Message: message, SignedInAs: signedInAs}
	s.render(w, refusal.Status, "problem.html", page{Title: heading, Problem: view})
}

func (s *Server) render(w http.ResponseWriter, status int, name string, data page) {
	var buf bytes.Buffer
	if err := pages[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		s.Log.Error(err, "rendering a page", "page", name)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Security-Policy", s.pagePolicy())
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// pagePolicy allows this server's stylesheet, and forms that post here and continue to
// the identity provider (browsers apply form-action to the redirect too). Nothing else.
func (s *Server) pagePolicy() string {
	formAction := "'self'"
	if origin := s.SignIn.issuerOrigin(); origin != "" {
		formAction += " " + origin
	}
	return fmt.Sprintf("default-src 'none'; style-src 'self'; img-src 'self'; form-action %s; frame-ancestors 'none'; base-uri 'none'", formAction)
}

func handleStyle(w http.ResponseWriter, _ *http.Request) {
	css, _ := assets.ReadFile("static/style.css")
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "public, max-age=3600")
	_, _ = w.Write(css)
}

func humanTime(t time.Time) string {
	return t.UTC().Format("Mon 2 Jan 2006 15:04 MST")
}
