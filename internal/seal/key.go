package seal

import (
	"context"
	"crypto/rand"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// keyField is the Secret key that holds a key.
const keyField = "key"

// LoadKey returns the KeySize-byte key held in the Secret name, creating the Secret with a
// random key when it does not exist. Every replica must agree on the key, so it lives in
// the cluster, and the first replica to need it creates it; the others read that one.
// component labels the Secret for people reading it ("seal-key", "signin-key").
func LoadKey(ctx context.Context, c client.Client, name client.ObjectKey, component string) ([]byte, error) {
	for range 3 {
		var secret corev1.Secret
		err := c.Get(ctx, name, &secret)
		if err == nil {
			key := secret.Data[keyField]
			if len(key) != KeySize {
				return nil, fmt.Errorf("secret %s: key %q must hold %d bytes, it holds %d", name, keyField, KeySize, len(key))
			}
			return key, nil
		}
		if !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("reading the %s from secret %s: %w", component, name, err)
		}
		key := make([]byte, KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
		secret = corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name.Name, Namespace: name.Namespace,
				Labels: map[string]string{"app.kubernetes.io/managed-by": "rolecall", "app.kubernetes.io/component": component}},
			Data: map[string][]byte{keyField: key},
		}
		err = c.Create(ctx, &secret)
		if err == nil {
			return key, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return nil, fmt.Errorf("creating the %s secret %s: %w", component, name, err)
		}
	}
	return nil, fmt.Errorf("secret %s keeps changing; cannot agree on a %s", name, component)
}
