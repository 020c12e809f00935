package redeem

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/token"
)

// TokenIndex indexes cached token Secrets by a keyed hash of their token. The key is
// random per process and never stored, so the index allows lookups in constant time
// without any hash of a token existing anywhere but in this process's memory.
const TokenIndex = "invites.rolecall.dev/token-hmac"

// TokenIndexFunc returns the index function for TokenIndex under the given key.
func TokenIndexFunc(key []byte) client.IndexerFunc {
	return func(obj client.Object) []string {
		secret, ok := obj.(*corev1.Secret)
		if !ok || secret.Labels[invitesv1alpha1.TokenLabel] != invitesv1alpha1.TokenLabelIssued {
			return nil
		}
		value, ok := secret.Data[invitesv1alpha1.TokenSecretKey]
		if !ok {
			return nil
		}
		return []string{keyedHash(key, string(value))}
	}
}

func keyedHash(key []byte, value string) string {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))
}

// lookup finds the invitation a token belongs to. The token must be the invitation's
// current one: a rotated token finds nothing.
func (s *Server) lookup(ctx context.Context, submitted string) (*invitesv1alpha1.Invitation, *Error, error) {
	t, err := token.Parse(submitted)
	if err != nil {
		return nil, errUnknownToken, nil
	}
	var secrets corev1.SecretList
	if err := s.Reader.List(ctx, &secrets, client.MatchingFields{TokenIndex: keyedHash(s.HashKey, t.Value)}); err != nil {
		return nil, nil, err
	}
	for i := range secrets.Items {
		secret := &secrets.Items[i]
		owner := metav1.GetControllerOf(secret)
		if owner == nil || owner.Kind != "Invitation" || !token.Equal(string(secret.Data[invitesv1alpha1.TokenSecretKey]), t.Value) {
			continue
		}
		inv := &invitesv1alpha1.Invitation{}
		err := s.Reader.Get(ctx, client.ObjectKey{Namespace: secret.Namespace, Name: owner.Name}, inv)
		if client.IgnoreNotFound(err) != nil {
			return nil, nil, err
		}
		if err != nil || inv.UID != owner.UID {
			continue
		}
		return inv, nil, nil
	}
	return nil, errUnknownToken, nil
}
