package devidp

import (
	"context"
	_ "embed"
	"html/template"
	"log/slog"
	"net/http"
	"slices"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// loginPath serves the login page; the op package sends the browser here with the
// sign-in request's ID (see client.LoginURL).
const loginPath = "/login"

//go:embed login.html
var loginHTML string

var loginTemplate = template.Must(template.New("login").Parse(loginHTML))

// loginPage asks for a username and password and, once they match, sends the browser to
// the op package's callback, which issues the code and redirects to the client.
type loginPage struct {
	store    *storage
	issuer   string
	callback func(context.Context, string) string
	hint     *loginHint
	log      *slog.Logger
}

type loginHint struct {
	Usernames          []string
	PasswordIsUsername bool
}

type loginData struct {
	Action, ID, Username, Error string
	Hint                        *loginHint
}

func newLoginPage(store *storage, issuer string, callback func(context.Context, string) string, opts Options) *loginPage {
	p := &loginPage{store: store, issuer: issuer, callback: callback, log: opts.Logger}
	if opts.ShowDemoHint {
		p.hint = &loginHint{PasswordIsUsername: true}
		for _, u := range opts.Users {
			p.hint.Usernames = append(p.hint.Usernames, u.Username)
			p.hint.PasswordIsUsername = p.hint.PasswordIsUsername && u.Password == u.Username
		}
		slices.Sort(p.hint.Usernames)
	}
	return p
}

func (p *loginPage) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Inline styles only; nothing is loaded, nothing runs, nobody frames the page.
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("Cache-Control", "no-store")
	switch r.Method {
	case http.MethodGet:
		id := r.URL.Query().Get("id")
		if _, err := p.store.AuthRequestByID(r.Context(), id); err != nil {
			p.render(w, http.StatusBadRequest, loginData{Error: unknownRequestMessage})
			return
		}
		p.render(w, http.StatusOK, loginData{ID: id})
	case http.MethodPost:
		p.signIn(w, r)
	default:
		w.Header().Set("Allow", "GET, POST")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
	}
}

const unknownRequestMessage = "This sign-in request is unknown or has expired. Start again from the application."

func (p *loginPage) signIn(w http.ResponseWriter, r *http.Request) {
	id, username := r.PostFormValue("id"), r.PostFormValue("username")
	user, ok := p.store.checkPassword(username, r.PostFormValue("password"))
	if !ok {
		p.log.Info("sign-in refused", "username", username)
		// 401 lets programs tell a refusal from the first showing of the form.
		p.render(w, http.StatusUnauthorized, loginData{ID: id, Username: username, Error: "Wrong username or password."})
		return
	}
	if err := p.store.completeLogin(id, user.Username); err != nil {
		p.render(w, http.StatusBadRequest, loginData{Error: unknownRequestMessage})
		return
	}
	p.log.Info("signed in", "username", user.Username)
	// 303 turns the POST into the GET the callback expects.
	http.Redirect(w, r, p.callback(op.ContextWithIssuer(r.Context(), p.issuer), id), http.StatusSeeOther)
}

func (p *loginPage) render(w http.ResponseWriter, status int, data loginData) {
	data.Action, data.Hint = loginPath, p.hint
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTemplate.Execute(w, data); err != nil {
		p.log.Error("rendering the login page", "error", err)
	}
}
