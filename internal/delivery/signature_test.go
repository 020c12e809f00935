package delivery_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/delivery"
)

var secret = []byte("a shared key of 32 random bytes.")

// receiver is a real HTTP server that checks signatures as the docs tell receivers to,
// refuses replayed IDs, and answers with the status codes it is given, in turn.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	answers  []int
	seen     map[string]bool
	bodies   []map[string]any
	refusals []string
}

func newReceiver(answers ...int) *receiver {
	r := &receiver{answers: answers, seen: map[string]bool{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	DeferCleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	body, _ := io.ReadAll(req.Body)
	id, err := delivery.Verify(req.Header, body, secret, time.Now(), delivery.DefaultTolerance)
	if err == nil && r.seen[id] {
		err = errReplay
	}
	if err != nil {
		r.refusals = append(r.refusals, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.seen[id] = true
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	r.bodies = append(r.bodies, decoded)
	status := http.StatusNoContent
	if len(r.answers) > 0 {
		status, r.answers = r.answers[0], r.answers[1:]
	}
	w.WriteHeader(status)
}

type replayError struct{}

func (replayError) Error() string { return "request ID seen before" }

var errReplay = replayError{}

func secretFile() string {
	path := filepath.Join(GinkgoT().TempDir(), "key")
	Expect(os.WriteFile(path, append(secret, '\n'), 0o600)).To(Succeed())
	return path
}

var _ = Describe("Signed requests", func() {
	It("deliver an invite to a webhook receiver that verifies them", func(ctx SpecContext) {
		r := newReceiver()
		hook := &delivery.Webhook{Poster: &delivery.SignedPoster{URL: r.URL, SecretFile: secretFile()}}
		Expect(hook.Send(ctx, invite)).To(Succeed())
		Expect(r.refusals).To(BeEmpty())
		Expect(r.bodies).To(ConsistOf(And(
			HaveKeyWithValue("type", "invitation"), HaveKeyWithValue("url", invite.URL),
			HaveKeyWithValue("email", "alice@example.com"), HaveKeyWithValue("namespace", "team-a"))))
	})

	It("ask the identity provider hook to add and remove a membership", func(ctx SpecContext) {
		r := newReceiver()
		hook := &delivery.IDPHook{Poster: &delivery.SignedPoster{URL: r.URL, SecretFile: secretFile()}}
		m := delivery.Membership{User: "oidc:alice", Group: "team-a-devs", Invitation: "alice", Namespace: "team-a"}
		Expect(hook.Add(ctx, m)).To(Succeed())
		Expect(hook.Remove(ctx, m)).To(Succeed())
		Expect(r.bodies).To(HaveLen(2))
		Expect(r.bodies[0]).To(And(HaveKeyWithValue("action", "add"), HaveKeyWithValue("user", "oidc:alice"), HaveKeyWithValue("group", "team-a-devs")))
		Expect(r.bodies[1]).To(HaveKeyWithValue("action", "remove"))
	})

	DescribeTable("answers worth retrying are told apart from refusals",
		func(status int, permanent bool) {
			r := newReceiver(status)
			err := (&delivery.SignedPoster{URL: r.URL, SecretFile: secretFile()}).Post(GinkgoT().Context(), map[string]string{})
			Expect(err).To(HaveOccurred())
			Expect(delivery.IsPermanent(err)).To(Equal(permanent))
		},
		Entry("500", http.StatusInternalServerError, false),
		Entry("503", http.StatusServiceUnavailable, false),
		Entry("429", http.StatusTooManyRequests, false),
		Entry("400", http.StatusBadRequest, true),
		Entry("404", http.StatusNotFound, true),
	)

	It("are never sent unsigned: a missing key file fails the call", func(ctx SpecContext) {
		r := newReceiver()
		err := (&delivery.SignedPoster{URL: r.URL, SecretFile: filepath.Join(GinkgoT().TempDir(), "absent")}).Post(ctx, map[string]string{})
		Expect(err).To(MatchError(ContainSubstring("signing secret")))
		Expect(r.bodies).To(BeEmpty())
	})

	Describe("Verify, as a receiver uses it", func() {
		now := time.Unix(1_800_000_000, 0)
		body := []byte(`{"action":"add"}`)
		signed := func(at time.Time, id string, key []byte) http.Header {
			req := httptest.NewRequest(http.MethodPost, "/", nil)
			delivery.SignRequest(req, key, at, id, body)
			return req.Header
		}

		It("accepts a fresh request signed with the key, and returns its ID", func() {
			Expect(delivery.Verify(signed(now, "id-1", secret), body, secret, now.Add(time.Minute), delivery.DefaultTolerance)).To(Equal("id-1"))
		})

		DescribeTable("refuses",
			func(header func() http.Header, tampered []byte, message string) {
				_, err := delivery.Verify(header(), tampered, secret, now, delivery.DefaultTolerance)
				Expect(err).To(MatchError(ContainSubstring(message)))
			},
			Entry("a changed body", func() http.Header { return signed(now, "id", secret) }, []byte(`{"action":"remove"}`), "does not match"),
			Entry("another key", func() http.Header { return signed(now, "id", []byte("another key")) }, body, "does not match"),
			Entry("a replay six minutes later", func() http.Header { return signed(now.Add(-6*time.Minute), "id", secret) }, body, "tolerance"),
			Entry("a timestamp from the future", func() http.Header { return signed(now.Add(6*time.Minute), "id", secret) }, body, "tolerance"),
			Entry("a timestamp moved to look fresh", func() http.Header {
				h := signed(now.Add(-time.Hour), "id", secret)
				h.Set(delivery.TimestampHeader, "1800000000")
				return h
			}, body, "does not match"),
			Entry("another ID under the same signature", func() http.Header {
				h := signed(now, "id", secret)
				h.Set(delivery.IDHeader, "id-2")
				return h
			}, body, "does not match"),
			Entry("no signature", func() http.Header {
				h := signed(now, "id", secret)
				h.Del(delivery.SignatureHeader)
				return h
			}, body, "missing"),
			Entry("no timestamp", func() http.Header { return http.Header{} }, body, "malformed"),
		)
	})
})
