package delivery

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a signed request. A receiver recomputes the signature over the timestamp and
// the body, rejects timestamps outside its tolerance (a captured request cannot be replayed
// later) and remembers IDs it has seen within that tolerance (nor replayed sooner).
const (
	TimestampHeader = "X-Rolecall-Timestamp"
	SignatureHeader = "X-Rolecall-Signature"
	IDHeader        = "X-Rolecall-Id"
	signaturePrefix = "sha256="
)

// DefaultTolerance is how far a signed request's timestamp may be from the receiver's clock.
const DefaultTolerance = 5 * time.Minute

// Sign computes the signature of body sent at ts: "sha256=" and the hex HMAC-SHA256, keyed
// with secret, of "<unix seconds>.<id>.<body>".
func Sign(secret []byte, ts time.Time, id string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	_, _ = fmt.Fprintf(mac, "%d.%s.", ts.Unix(), id) // a hash never fails to write
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// SignRequest sets the timestamp, ID and signature headers of req, whose body is body.
func SignRequest(req *http.Request, secret []byte, now time.Time, id string, body []byte) {
	req.Header.Set(TimestampHeader, strconv.FormatInt(now.Unix(), 10))
	req.Header.Set(IDHeader, id)
	req.Header.Set(SignatureHeader, Sign(secret, now, id, body))
}

// Verify checks a signed request as a receiver should: the signature matches (compared in
// constant time) and the timestamp is within tolerance of now. Receivers should also refuse
// an ID they have already seen. It returns the request's ID.
func Verify(header http.Header, body, secret []byte, now time.Time, tolerance time.Duration) (string, error) {
	seconds, err := strconv.ParseInt(header.Get(TimestampHeader), 10, 64)
	if err != nil {
		return "", errors.New("missing or malformed " + TimestampHeader)
	}
	ts := time.Unix(seconds, 0)
	if d := now.Sub(ts); d > tolerance || d < -tolerance {
		return "", fmt.Errorf("%s is %s away from now, beyond the %s tolerance", TimestampHeader, d.Round(time.Second), tolerance)
	}
	id := header.Get(IDHeader)
	got := header.Get(SignatureHeader)
	if id == "" || !strings.HasPrefix(got, signaturePrefix) {
		return "", errors.New("missing " + IDHeader + " or " + SignatureHeader)
	}
	if !hmac.Equal([]byte(got), []byte(Sign(secret, ts, id, body))) {
		return "", errors.New("signature does not match")
	}
	return id, nil
}
