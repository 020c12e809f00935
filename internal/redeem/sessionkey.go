package redeem

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// sessionKeyField is the Secret key holding the sign-in cookie key.
const sessionKeyField = "key"

// SessionKey returns the key that seals sign-in cookies. Every replica must use the same
// one (a sign-in may start on one and come back to another), so it lives in a Secret that
// the first replica to need it creates.
func SessionKey(ctx context.Context, c client.Client, name client.ObjectKey) ([]byte, error) {
	for range 3 {
		var secret corev1.Secret
		err := c.Get(ctx, name, &secret)
		if err == nil {
			key := secret.Data[sessionKeyField]
			if len(key) != 32 {
				return nil, fmt.Errorf("secret %s: key %q must hold 32 bytes, it holds %d", name, sessionKeyField, len(key))
			}
			return key, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the sign-in key from secret %s: %w", name, err)
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		secret = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name.Name, Namespace: name.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "rolecall", "app.kubernetes.io/component": "signin-key"}},
			Data: map[string][]byte{sessionKeyField: key},
		}
		err = c.Create(ctx, &secret)
		if err == nil {
			return key, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the sign-in key secret %s: %w", name, err)
		}
	}
	return nil, fmt.Errorf("secret %s keeps changing; cannot agree on a sign-in key", name)
}
