package redeem

import (
	"net/http"
	"net/url"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/token"
)

// The landing page is what a link opens. Mail scanners and chat previews follow links, so
// GET only reads: it shows the offer and never claims, declines or counts anything but a
// wrong token. Acting takes a POST from the page itself (CSRF token plus the browser's
// own cross-origin checks), and then a sign-in.

// handleHome offers a box for typing a code.
func (s *Server) handleHome(w http.ResponseWriter, r *http.Request) {
	if submitted := r.URL.Query().Get("token"); submitted != "" {
		http.Redirect(w, r, "/i/"+url.PathEscape(submitted), http.StatusSeeOther)
		return
	}
	s.render(w, http.StatusOK, "home.html", page{Title: "Redeem an invitation"})
}

func (s *Server) handleLanding(w http.ResponseWriter, r *http.Request) {
	inv, refusal := s.findForBrowser(w, r)
	if refusal != nil {
		s.renderProblem(w, refusal, "")
		return
	}
	csrf := randomString()
	if c, err := r.Cookie(csrfCookie); err == nil && len(c.Value) == len(csrf) {
		csrf = c.Value
	}
	if s.SignIn != nil {
		s.cookie(w, csrfCookie, csrf, "/i/", flowLifetime, http.SameSiteStrictMode)
	}
	s.renderOffer(w, inv, r.PathValue("token"), csrf)
}

// handleAction starts a sign-in to accept or decline, for a form posted by the landing page.
func (s *Server) handleAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if s.SignIn == nil {
			s.renderProblem(w, errNoSignIn, "")
			return
		}
		cookie, err := r.Cookie(csrfCookie)
		if err != nil || !equalStrings(cookie.Value, r.PostFormValue("csrf")) {
			s.renderProblem(w, errCSRF, "")
			return
		}
		inv, refusal := s.findForBrowser(w, r)
		if refusal == nil && action == actionDecline && inv.Spec.Email == "" {
			refusal = errNotDeclinable
		}
		if refusal != nil {
			s.renderProblem(w, refusal, "")
			return
		}
		s.startSignIn(w, r, r.PathValue("token"), action)
	}
}

var (
	errCSRF     = refuse(http.StatusForbidden, "csrf", "the form expired or did not come from this site; open your invitation link again")
	errNoSignIn = refuse(http.StatusNotImplemented, "no_signin", "browser sign-in is not configured here; redeem with `kubectl invite redeem` instead")
)

// findForBrowser finds a usable invitation for the token in the path, under the same
// limits as the API: a wrong token spends the client's budget and counts toward locking
// its token ID.
func (s *Server) findForBrowser(w http.ResponseWriter, r *http.Request) (*invitesv1alpha1.Invitation, *Error) {
	client := s.clientOf(r)
	if wait := s.limits().clientBlocked(client); wait > 0 {
		retryAfter(w, wait)
		return nil, errRateLimited
	}
	submitted := r.PathValue("token")
	id := parseID(submitted)
	if wait := s.limits().idLocked(id); wait > 0 {
		retryAfter(w, wait)
		return nil, errLocked
	}
	inv, refusal, err := s.lookup(r.Context(), submitted)
	if err != nil {
		return nil, s.failure(err)
	}
	s.countFailure(client, refusal, id)
	if refusal != nil {
		return nil, refusal
	}
	return inv, usable(inv, s.Clock.Now())
}

func parseID(submitted string) string {
	t, _ := token.Parse(submitted)
	return t.ID
}
