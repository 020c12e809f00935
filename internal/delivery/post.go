package delivery

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// SignedPoster POSTs JSON signed with a shared secret (see Sign). One call is one attempt:
// the controllers that use it count attempts in status and back off between them, so a
// retry survives a restart of the manager.
type SignedPoster struct {
	// URL receives the requests.
	URL string
	// SecretFile holds the HMAC key. It is read on every request, so a rotated Secret
	// mounted there takes effect without a restart.
	SecretFile string
	// Client sends the requests; nil means a client with a 10 second timeout.
	Client *http.Client
	// Now is the clock for timestamps; nil means time.Now.
	Now func() time.Time
}

// Post sends payload as JSON. Network errors, 429 and 5xx answers are worth retrying;
// other non-2xx answers are marked Permanent.
func (p *SignedPoster) Post(ctx context.Context, payload any) error {
	body, err := json.Marshal(payload)
	if err != nil {
		return Permanent(err)
	}
	secret, err := os.ReadFile(p.SecretFile)
	if err != nil {
		return fmt.Errorf("reading the signing secret: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(err)
	}
	req.Header.Set("Content-Type", "application/json")
	id, err := newID()
	if err != nil {
		return err
	}
	SignRequest(req, bytes.TrimSpace(secret), p.now(), id, body)
	resp, err := p.client().Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return classify(resp.StatusCode)
}

func classify(status int) error {
	switch {
	case status >= 200 && status < 300:
		return nil
	case status == http.StatusTooManyRequests || status >= 500 || status == http.StatusRequestTimeout:
		return fmt.Errorf("the receiver answered %d %s", status, http.StatusText(status))
	default:
		return Permanent(fmt.Errorf("the receiver refused the request: %d %s", status, http.StatusText(status)))
	}
}

func (p *SignedPoster) client() *http.Client {
	if p.Client != nil {
		return p.Client
	}
	return &http.Client{Timeout: 10 * time.Second}
}

func (p *SignedPoster) now() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

// newID is a random request ID that receivers use to refuse replays.
func newID() (string, error) {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}
