// Package seal lets rolecall recognise what it wrote itself.
//
// Everything rolecall keeps in the cluster can be written by someone rolecall must not
// trust: an invitation's status by whoever may patch invitations/status, a binding's labels
// and annotations by whoever may create RoleBindings, a Secret by whoever may create
// Secrets. rolecall therefore signs the facts it later acts on (which token is current and
// until when, who claimed a use, which bindings it made for whom) with a key that only the
// manager holds, and acts only on facts whose seal verifies. A forged or copied fact is
// ignored; the worst such a writer can do is stop rolecall from acting.
package seal

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// KeySize is the size of the sealing key in bytes.
const KeySize = 32

// Sealer computes and verifies seals under one key. Every replica must use the same key
// (see LoadKey): a claim sealed by one replica is verified by the controller on another.
type Sealer struct {
	key []byte
}

// New returns a Sealer for a KeySize-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("a sealing key has %d bytes, this one %d", KeySize, len(key))
	}
	return &Sealer{key: append([]byte(nil), key...)}, nil
}

// Sum seals the fields for one purpose. Each field is length-prefixed, so no two different
// lists of fields share an encoding, and the purpose keeps a seal made for one kind of fact
// from passing as another.
func (s *Sealer) Sum(purpose string, fields ...string) string {
	mac := hmac.New(sha256.New, s.key)
	for _, f := range append([]string{purpose}, fields...) {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(f)))
		mac.Write(n[:])
		mac.Write([]byte(f))
	}
	return hex.EncodeToString(mac.Sum(nil))
}

// Verify says, in constant time, whether seal is Sum(purpose, fields...).
func (s *Sealer) Verify(seal, purpose string, fields ...string) bool {
	return seal != "" && hmac.Equal([]byte(seal), []byte(s.Sum(purpose, fields...)))
}
