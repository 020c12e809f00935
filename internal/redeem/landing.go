package redeem

import (
	"errors"
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

// maxFormBody bounds the landing page's form: a CSRF token and some punctuation.
const maxFormBody = 1 << 10

// handleAction starts a sign-in to accept or decline, for a form posted by the landing page.
// The cheap checks come first: the client's budget, then the CSRF cookie, and only then is
// the body read, at most maxFormBody of it.
func (s *Server) handleAction(action string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if refusal := s.admitClient(w, s.clientOf(r)); refusal != nil {
			s.renderProblem(w, refusal, "")
			return
		}
		if s.SignIn == nil {
			s.renderProblem(w, errNoSignIn, "")
			return
		}
		cookie, err := r.Cookie(csrfCookie)
		if err != nil {
			s.renderProblem(w, errCSRF, "")
			return
		}
		submitted, refusal := formValue(w, r, "csrf")
		if refusal == nil && !equalStrings(cookie.Value, submitted) {
			refusal = errCSRF
		}
		if refusal != nil {
			s.renderProblem(w, refusal, "")
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

// formValue reads one field of a URL-encoded form of at most maxFormBody bytes. Multipart
// forms are not read at all: the landing page never sends one.
func formValue(w http.ResponseWriter, r *http.Request, name string) (string, *Error) {
	if r.ContentLength > maxFormBody {
		return "", errTooLarge
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBody)
	if err := r.ParseForm(); err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return "", errTooLarge
		}
		return "", errCSRF
	}
	return r.PostForm.Get(name), nil
}

var (
	errCSRF     = refuse(http.StatusForbidden, "csrf", "the form expired or did not come from this site; open your invitation link again")
	errNoSignIn = refuse(http.StatusNotImplemented, "no_signin", "browser sign-in is not configured here; redeem with `kubectl invite redeem` instead")
)

// findForBrowser finds a usable invitation for the token in the path, under the same
// limits as the API: a wrong token spends the client's budget and counts toward locking
// this client (and no other) out of its token ID, and any refusal spends the client's
// refusal budget. Nobody is authenticated yet, so no user is charged.
func (s *Server) findForBrowser(w http.ResponseWriter, r *http.Request) (*invitesv1alpha1.Invitation, *Error) {
	client := s.clientOf(r)
	submitted := r.PathValue("token")
	inv, err := s.tryToken(r.Context(), w, client, submitted, parseID(submitted))
	if err == nil {
		if refusal := usable(inv, s.Clock.Now()); refusal != nil {
			err = refusal
		}
	}
	if err == nil {
		return inv, nil
	}
	refusal := s.failure(err)
	s.account(client, "", refusal)
	return inv, refusal
}

func parseID(submitted string) string {
	t, _ := token.Parse(submitted)
	return t.ID
}
