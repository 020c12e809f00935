package redeem_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/redeem"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/token"
)

// The fuzz targets run the real handler against a fake store holding one usable invitation
// for a specific email address, so no API server is needed. A request that names its token
// and signs in with fuzzGood is refused with email_unverified (403) before anything would
// be written; every other request stops earlier. Nothing a request can say reaches the
// parts of redemption that write (they need Live, which is nil here).
const (
	// fuzzKnownToken is the known invitation's token: a Link token, fixed so that seeds in
	// testdata can name it.
	fuzzKnownToken = "fuzzknwn.abcdefghijklmnopqrstuvwxyz234567"
	// fuzzGood is the one credential the authenticator accepts; fuzzUnavailable is one it
	// cannot check right now.
	fuzzGood        = "Bearer good-credential"
	fuzzUnavailable = "Bearer unavailable-credential"
)

var fuzzNow = time.Date(2030, time.January, 2, 3, 4, 5, 0, time.UTC)

type fuzzAuthenticator struct{}

func (fuzzAuthenticator) Authenticate(_ context.Context, credential string) (identity.User, error) {
	switch "Bearer " + credential {
	case fuzzGood:
		return identity.User{Username: "oidc:alice", Groups: []string{"oidc:staff"}, Email: "alice@example.com"}, nil
	case fuzzUnavailable:
		return identity.User{}, fmt.Errorf("%w: the issuer is down", identity.ErrUnavailable)
	}
	return identity.User{}, identity.ErrUnauthenticated
}

// fuzzStore is the fake store, built once per process: the fake client is safe for
// concurrent reads and nothing writes to it.
type fuzzStore struct {
	reader client.Reader
	sealer *seal.Sealer
}

func newFuzzStore(tb testing.TB) *fuzzStore {
	tb.Helper()
	key := []byte("fuzz-seal-key-0123456789abcdef01")
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "known", Namespace: "team-a", UID: types.UID("c0ffee00-0000-4000-8000-000000000001")},
		Spec: invitesv1alpha1.InvitationSpec{
			Email: "alice@example.com", Grants: []invitesv1alpha1.Grant{{Role: "deployer"}}, MaxUses: 1,
			Inviter: &invitesv1alpha1.Inviter{Username: "lee", Groups: []string{"team-leads"}},
		},
		Status: invitesv1alpha1.InvitationStatus{
			Phase: invitesv1alpha1.PhaseActive, TokenID: "fuzzknwn",
			ExpiresAt: &metav1.Time{Time: fuzzNow.Add(72 * time.Hour)},
		},
	}
	sealer, err := seal.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	inv.Status.TokenHash = sealer.TokenHash(fuzzKnownToken)
	sealer.SealToken(inv)
	// An invitation whose status names a token rolecall did not seal: its token finds nothing.
	forged := inv.DeepCopy()
	forged.Name, forged.UID = "forged", "c0ffee00-0000-4000-8000-000000000002"
	forged.Status.TokenHash = sealer.TokenHash("orphanid.abcdefghijklmnopqrstuvwxyz234567")
	reader := fake.NewClientBuilder().WithScheme(manager.NewScheme()).
		WithObjects(inv, forged).
		WithIndex(&invitesv1alpha1.Invitation{}, seal.TokenHashIndex, seal.TokenHashIndexValue).
		Build()
	return &fuzzStore{reader: reader, sealer: sealer}
}

// server is a fresh Server for one request, so no input changes what the next one sees
// (the failure limits are per Server), logging into log.
func (s *fuzzStore) server(log logr.Logger) *redeem.Server {
	return &redeem.Server{
		Reader: s.reader, Sealer: s.sealer, Authenticator: fuzzAuthenticator{},
		Clock: clocktesting.NewFakePassiveClock(fuzzNow), Recorder: &events.FakeRecorder{}, Log: log,
		Limits: unlimited,
	}
}

type fuzzResponse struct {
	status int
	header http.Header
	body   string
	logs   []map[string]any
}

// serve runs one request through a fresh Server's handler, recording its log lines.
func (s *fuzzStore) serve(t testing.TB, req *http.Request) fuzzResponse {
	t.Helper()
	var logs []map[string]any
	log := funcr.NewJSON(func(obj string) {
		line := map[string]any{}
		if err := json.Unmarshal([]byte(obj), &line); err != nil {
			t.Fatalf("a log line is not JSON: %v: %s", err, obj)
		}
		logs = append(logs, line)
	}, funcr.Options{Verbosity: 10})
	rec := httptest.NewRecorder()
	s.server(log).Handler().ServeHTTP(rec, req)
	return fuzzResponse{status: rec.Code, header: rec.Header(), body: rec.Body.String(), logs: logs}
}

func redemptionRequest(ctx context.Context, body []byte, authorization string) *http.Request {
	req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/api/v1/redemptions", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	return req
}

// FuzzRedemptionRequest posts arbitrary bodies with arbitrary Authorization headers to
// POST /api/v1/redemptions. With wrap, the body is {"token": <body as a string>}, so the
// fuzzer also explores well-formed requests. Whatever the input, the handler must not panic,
// must answer one of the statuses the API promises with exactly one of its fixed JSON
// refusals (so the body can never echo the token), must call a well-formed request
// malformed never, must not look past the credential when the credential is not accepted,
// and must not log the token.
func FuzzRedemptionRequest(f *testing.F) {
	store := newFuzzStore(f)
	// The fixed refusals, as the handler writes them, by status.
	refusals := map[int]string{}
	fixed := map[string]bool{}
	for _, c := range []struct {
		body          string
		authorization string
		status        int
	}{
		{`{`, "", http.StatusBadRequest},
		{`{"token":"x"}`, "", http.StatusUnauthorized},
		{`{"token":"x"}`, fuzzUnavailable, http.StatusServiceUnavailable},
		{`{"token":"x"}`, fuzzGood, http.StatusNotFound},
		{`{"token":"` + fuzzKnownToken + `"}`, fuzzGood, http.StatusForbidden},
	} {
		r := store.serve(f, redemptionRequest(f.Context(), []byte(c.body), c.authorization))
		if r.status != c.status {
			f.Fatalf("%s with %q: status %d, want %d: %s", c.body, c.authorization, r.status, c.status, r.body)
		}
		var refusal struct{ Code, Message string }
		if err := json.Unmarshal([]byte(r.body), &refusal); err != nil || refusal.Code == "" || refusal.Message == "" {
			f.Fatalf("%s: the refusal is not JSON with a code and a message: %v: %s", c.body, err, r.body)
		}
		refusals[c.status] = r.body
		fixedLogValues(fixed, r.logs)
	}

	for _, seed := range []struct {
		body          string
		authorization string
		wrap          bool
	}{
		{`{"token":"` + fuzzKnownToken + `"}`, fuzzGood, false},
		{fuzzKnownToken, fuzzGood, true},
		{"7KQ2-M9XD-HT4P-ZR8W", fuzzGood, true},
		{"orphanid.abcdefghijklmnopqrstuvwxyz234567", fuzzGood, true},
		{`{"token":"abc","extra":1}`, fuzzGood, false},
		{`{"token":""}`, fuzzGood, false},
		{`{"TOKEN":"abc"}`, "Bearer ", false},
		{`{"token":"abc"} trailing`, fuzzUnavailable, false},
		{`[1,2,3]`, "Basic YWxpY2U6c2VjcmV0", false},
		{`null`, fuzzGood, false},
		{`{"token":"` + strings.Repeat("a", 5000) + `"}`, fuzzGood, false},
		{"\xff\xfe", "bearer good-credential", true},
		{"", "", false},
	} {
		f.Add([]byte(seed.body), seed.authorization, seed.wrap)
	}
	f.Fuzz(func(t *testing.T, body []byte, authorization string, wrap bool) {
		if wrap {
			var err error
			if body, err = json.Marshal(map[string]string{"token": string(body)}); err != nil {
				t.Fatal(err)
			}
		}
		r := store.serve(t, redemptionRequest(t.Context(), body, authorization))
		want, ok := refusals[r.status]
		if !ok {
			t.Fatalf("status %d is not one the API promises here: %s", r.status, r.body)
		}
		if r.body != want {
			t.Fatalf("status %d with body %q; the API's refusal is %q", r.status, r.body, want)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Fatalf("Content-Type %q", ct)
		}
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q", cc)
		}

		// What the handler should have read, decoded the same way a client means it.
		var req struct {
			Token string `json:"token"`
		}
		decoder := json.NewDecoder(bytes.NewReader(body))
		decoder.DisallowUnknownFields()
		wellFormed := len(body) <= 4<<10 && decoder.Decode(&req) == nil && req.Token != ""
		if wellFormed && r.status == http.StatusBadRequest {
			t.Fatalf("a well-formed request (%d bytes) was called malformed", len(body))
		}
		if !wellFormed {
			req.Token = ""
		}
		if r.status != http.StatusBadRequest && authorization != fuzzGood && authorization != fuzzUnavailable && r.status != http.StatusUnauthorized {
			t.Fatalf("an unaccepted credential %q got %d, not 401", authorization, r.status)
		}
		if r.status == http.StatusForbidden {
			if parsed, err := token.Parse(req.Token); err != nil || parsed.Value != fuzzKnownToken {
				t.Fatalf("403 for a token that is not the known invitation's: %q", req.Token)
			}
		}
		checkLogs(t, r.logs, req.Token, fixed)
	})
}

// checkLogs: the audit line names the token's public ID, never the token. fixed holds the
// values the log has for reasons of its own (messages, codes, the user, durations), which a
// short token may happen to equal.
func checkLogs(t *testing.T, logs []map[string]any, submitted string, fixed map[string]bool) {
	t.Helper()
	parsed, parseErr := token.Parse(submitted)
	for _, line := range logs {
		for k, v := range line {
			s, ok := v.(string)
			switch {
			case !ok:
			case k == "tokenID":
				if s != parsed.ID {
					t.Fatalf("logged tokenID %q for a token whose ID is %q", s, parsed.ID)
				}
			case submitted == "" || fixed[s]:
			case s == submitted || (parseErr == nil && s == parsed.Value):
				t.Fatalf("the log's %q is the token: %v", k, line)
			case parsed.Kind == token.Link && strings.Contains(s, parsed.Value[strings.IndexByte(parsed.Value, '.')+1:]):
				t.Fatalf("the log's %q holds the token's secret: %v", k, line)
			}
		}
	}
}

// fixedLogValues are the string values of log lines written for reasons of their own.
func fixedLogValues(into map[string]bool, logs []map[string]any) {
	for _, line := range logs {
		for k, v := range line {
			if s, ok := v.(string); ok && k != "tokenID" {
				into[s] = true
			}
		}
	}
}

// FuzzLandingPage opens GET /i/{token} with arbitrary tokens, escaped as a link would be.
// The page must never panic or fail (500), and must be exactly one of the fixed pages: the
// offer for the known invitation (which, without browser sign-in, has no form and so no
// token), or the problem page for an unknown token. Paths the router cleans (dot segments,
// empty segments) are redirected within this site, never elsewhere.
func FuzzLandingPage(f *testing.F) {
	store := newFuzzStore(f)
	open := func(t testing.TB, tok string) fuzzResponse {
		return store.serve(t, httptest.NewRequestWithContext(t.Context(), http.MethodGet, "/i/"+url.PathEscape(tok), nil))
	}
	offer := open(f, fuzzKnownToken)
	unknown := open(f, "no-such-token")
	notRouted := open(f, "")
	if offer.status != http.StatusOK || unknown.status != http.StatusNotFound || notRouted.status != http.StatusNotFound {
		f.Fatalf("the fixed pages: offer %d, unknown %d, not routed %d", offer.status, unknown.status, notRouted.status)
	}
	fixed := map[string]bool{}
	for _, r := range []fuzzResponse{offer, unknown, notRouted} {
		fixedLogValues(fixed, r.logs)
	}
	if strings.Contains(offer.body, fuzzKnownToken) {
		f.Fatalf("the offer page without sign-in shows the token: %s", offer.body)
	}

	for _, seed := range []string{
		fuzzKnownToken, " " + fuzzKnownToken + " ", strings.ToUpper(fuzzKnownToken), "7KQ2-M9XD-HT4P-ZR8W", "7kq2 m9xd ht4p zr8w",
		"orphanid.abcdefghijklmnopqrstuvwxyz234567", "", ".", "..", "../..", "a/../b", "/", "//evil.example", "%2F",
		"<script>alert(1)</script>", "\"'><", "\x00", "\xff", "é", strings.Repeat("x", 600),
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		r := open(t, tok)
		if cc := r.header.Get("Cache-Control"); cc != "no-store" {
			t.Fatalf("Cache-Control %q", cc)
		}
		switch r.status {
		case http.StatusOK:
			if parsed, err := token.Parse(tok); err != nil || parsed.Value != fuzzKnownToken {
				t.Fatalf("the offer page for a token that is not the known invitation's: %q", tok)
			}
			if r.body != offer.body {
				t.Fatalf("the offer page differs for %q: %s", tok, r.body)
			}
		case http.StatusNotFound:
			if r.body != unknown.body && r.body != notRouted.body {
				t.Fatalf("404 for %q with an unexpected body: %s", tok, r.body)
			}
		case http.StatusMovedPermanently, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			// The router cleans the path: only dot segments and empty segments get here.
			location := r.header.Get("Location")
			if !strings.HasPrefix(location, "/") || strings.HasPrefix(location, "//") || strings.Contains(location, `\`) {
				t.Fatalf("a redirect for %q leaves the site: %q", tok, location)
			}
			if p := "/i/" + tok + "/"; !strings.Contains(p, "/./") && !strings.Contains(p, "/../") && !strings.Contains(p[:len(p)-1], "//") {
				t.Fatalf("a redirect for %q, which has no dot or empty segment: %q", tok, location)
			}
		default:
			t.Fatalf("status %d for %q: %s", r.status, tok, r.body)
		}
		checkLogs(t, r.logs, tok, fixed)
	})
}
