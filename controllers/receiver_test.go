package controllers_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"time"

	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/delivery"
)

// hookSecret signs the requests the delivery webhook and the identity provider hook send.
var hookSecret = []byte("controllers-suite-hook-key")

// receiver is a real HTTP endpoint standing in for a chat system or an identity provider
// service: it verifies every signature, refuses replays, and answers as the spec says.
type receiver struct {
	server *httptest.Server
	mu     sync.Mutex
	seen   map[string]bool
	calls  []map[string]any
	// answer decides the status code for a request body; nil answers 204.
	answer func(body map[string]any) int
}

func newReceiver() *receiver {
	r := &receiver{seen: map[string]bool{}}
	r.server = httptest.NewServer(http.HandlerFunc(r.serve))
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	id, err := delivery.Verify(req.Header, body, hookSecret, time.Now(), delivery.DefaultTolerance)
	if err != nil || r.seen[id] {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	r.seen[id] = true
	var decoded map[string]any
	_ = json.Unmarshal(body, &decoded)
	r.calls = append(r.calls, decoded)
	status := http.StatusNoContent
	if r.answer != nil {
		status = r.answer(decoded)
	}
	w.WriteHeader(status)
}

// answerWith sets how the receiver answers from now on.
func (r *receiver) answerWith(answer func(body map[string]any) int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.answer = answer
}

// callsFor returns the verified requests whose key field has the value.
func (r *receiver) callsFor(key, value string) []map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []map[string]any
	for _, c := range r.calls {
		if c[key] == value {
			out = append(out, c)
		}
	}
	return out
}

func (r *receiver) poster() *delivery.SignedPoster {
	path := filepath.Join(os.TempDir(), "rolecall-controllers-hook-key")
	Expect(os.WriteFile(path, hookSecret, 0o600)).To(Succeed())
	return &delivery.SignedPoster{URL: r.server.URL, SecretFile: path}
}
