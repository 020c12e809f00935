// Package certs gives the admission webhooks a serving certificate without any other tool:
// a CA and a serving certificate kept in a Secret that every replica shares, written to the
// webhook server's certificate folder, with the CA patched into the webhook configurations,
// and renewed before they expire.
package certs

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	logf "sigs.k8s.io/controller-runtime/pkg/log"
)

// Secret keys, the same as cert-manager's, so either can provide the Secret.
const (
	CAKey   = "ca.crt"
	CertKey = corev1.TLSCertKey
	KeyKey  = corev1.TLSPrivateKeyKey
)

// Manager keeps the webhook serving certificate valid.
type Manager struct {
	// Client reads and writes the Secret and the webhook configurations directly: the
	// manager's cache does not hold them.
	Client client.Client
	// Secret is where the CA and the serving certificate are kept.
	Secret client.ObjectKey
	// DNSNames are the names the API server uses to reach the webhook server.
	DNSNames []string
	// CertDir is the webhook server's certificate folder.
	CertDir string
	// MutatingWebhooks and ValidatingWebhooks name the configurations to patch the CA into.
	MutatingWebhooks, ValidatingWebhooks []string
	// Validity is how long a new certificate lasts; RenewBefore is how long before the end
	// it is replaced.
	Validity, RenewBefore time.Duration
	Clock                 clock.Clock
}

// Ensure makes the certificate valid now and returns when it must next be renewed.
func (m *Manager) Ensure(ctx context.Context) (time.Time, error) {
	secret, err := m.currentSecret(ctx)
	if err != nil {
		return time.Time{}, err
	}
	cert, err := leaf(secret)
	if err != nil || m.Clock.Now().After(cert.NotAfter.Add(-m.RenewBefore)) || !coversNames(cert, m.DNSNames) {
		if secret, err = m.renew(ctx, secret); err != nil {
			return time.Time{}, err
		}
		if cert, err = leaf(secret); err != nil {
			return time.Time{}, err
		}
	}
	if err := writeFiles(m.CertDir, secret); err != nil {
		return time.Time{}, err
	}
	if err := m.patchCABundles(ctx, secret.Data[CAKey]); err != nil {
		return time.Time{}, err
	}
	return cert.NotAfter.Add(-m.RenewBefore), nil
}

// Start renews the certificate when it is due, on every replica, until ctx ends. Whichever
// replica renews first wins the write; the others read its result.
func (m *Manager) Start(ctx context.Context) error {
	log := logf.FromContext(ctx).WithName("webhook-certs")
	for {
		renewAt, err := m.Ensure(ctx)
		wait := renewAt.Sub(m.Clock.Now())
		if err != nil {
			log.Error(err, "keeping the webhook certificate valid; retrying in a minute")
			wait = time.Minute
		}
		select {
		case <-ctx.Done():
			return nil
		case <-m.Clock.After(max(wait, time.Second)):
		}
	}
}

// NeedLeaderElection is false: every replica serves webhooks and needs the files.
func (m *Manager) NeedLeaderElection() bool { return false }

func (m *Manager) currentSecret(ctx context.Context) (*corev1.Secret, error) {
	secret := &corev1.Secret{}
	err := m.Client.Get(ctx, m.Secret, secret)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	return secret, err
}

// renew writes a new CA and serving certificate. The old CA stays in the bundle while it is
// valid, so replicas still serving the old certificate are trusted until they catch up.
func (m *Manager) renew(ctx context.Context, old *corev1.Secret) (*corev1.Secret, error) {
	data, err := m.generate(old)
	if err != nil {
		return nil, err
	}
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: m.Secret.Namespace, Name: m.Secret.Name}}
	if old != nil {
		secret = old.DeepCopy()
	}
	secret.Type = corev1.SecretTypeTLS
	secret.Data = data
	if old == nil {
		err = m.Client.Create(ctx, secret)
	} else {
		err = m.Client.Update(ctx, secret)
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		// Another replica renewed at the same moment: use its certificate.
		return m.currentSecret(ctx)
	}
	if err == nil {
		logf.FromContext(ctx).Info("issued a new webhook serving certificate", "secret", m.Secret.String())
	}
	return secret, err
}

func (m *Manager) generate(old *corev1.Secret) (map[string][]byte, error) {
	now := m.Clock.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	caTemplate := template(now, m.Validity+m.RenewBefore, pkix.Name{CommonName: "rolecall-webhook-ca"})
	caTemplate.IsCA, caTemplate.KeyUsage = true, x509.KeyUsageCertSign|x509.KeyUsageDigitalSignature
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	ca, err := x509.ParseCertificate(caDER)
	if err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serving := template(now, m.Validity, pkix.Name{CommonName: m.DNSNames[0]})
	serving.DNSNames, serving.ExtKeyUsage = m.DNSNames, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	serving.KeyUsage = x509.KeyUsageDigitalSignature
	servingDER, err := x509.CreateCertificate(rand.Reader, serving, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, err
	}
	bundle := pemBlock("CERTIFICATE", caDER)
	if old != nil {
		bundle = append(bundle, stillValidCAs(old.Data[CAKey], now)...)
	}
	return map[string][]byte{
		CAKey:   bundle,
		CertKey: pemBlock("CERTIFICATE", servingDER),
		KeyKey:  pemBlock("EC PRIVATE KEY", keyDER),
	}, nil
}

func template(now time.Time, validity time.Duration, subject pkix.Name) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return &x509.Certificate{
		SerialNumber: serial, Subject: subject,
		NotBefore: now.Add(-5 * time.Minute), NotAfter: now.Add(validity),
		BasicConstraintsValid: true,
	}
}

func pemBlock(kind string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: kind, Bytes: der})
}

// stillValidCAs keeps the first CA of an old bundle while it has not expired.
func stillValidCAs(bundle []byte, now time.Time) []byte {
	block, _ := pem.Decode(bundle)
	if block == nil {
		return nil
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil || now.After(cert.NotAfter) {
		return nil
	}
	return pemBlock("CERTIFICATE", block.Bytes)
}

func leaf(secret *corev1.Secret) (*x509.Certificate, error) {
	if secret == nil {
		return nil, errors.New("no certificate yet")
	}
	block, _ := pem.Decode(secret.Data[CertKey])
	if block == nil || len(secret.Data[KeyKey]) == 0 || len(secret.Data[CAKey]) == 0 {
		return nil, errors.New("the certificate Secret is incomplete")
	}
	return x509.ParseCertificate(block.Bytes)
}

func coversNames(cert *x509.Certificate, names []string) bool {
	for _, n := range names {
		if cert.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

// writeFiles replaces the files atomically; the webhook server notices and reloads them.
func writeFiles(dir string, secret *corev1.Secret) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for _, key := range []string{CAKey, CertKey, KeyKey} {
		path := filepath.Join(dir, key)
		if current, err := os.ReadFile(path); err == nil && bytes.Equal(current, secret.Data[key]) { //nolint:gosec // our own certificate folder
			continue
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, secret.Data[key], 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
	}
	return nil
}

// patchCABundles sets the CA on every webhook of the named configurations.
func (m *Manager) patchCABundles(ctx context.Context, bundle []byte) error {
	encoded := base64.StdEncoding.EncodeToString(bundle)
	for kind, names := range map[string][]string{
		"MutatingWebhookConfiguration":   m.MutatingWebhooks,
		"ValidatingWebhookConfiguration": m.ValidatingWebhooks,
	} {
		for _, name := range names {
			if err := m.patchCABundle(ctx, kind, name, encoded); err != nil {
				return err
			}
		}
	}
	return nil
}

// patchCABundle works on the configuration as unstructured data, so that mutating and
// validating configurations, whose webhook types differ, take the same few lines.
func (m *Manager) patchCABundle(ctx context.Context, kind, name, encoded string) error {
	cfg := &unstructured.Unstructured{}
	cfg.SetGroupVersionKind(admissionregistrationv1.SchemeGroupVersion.WithKind(kind))
	if err := m.Client.Get(ctx, client.ObjectKey{Name: name}, cfg); err != nil {
		return fmt.Errorf("reading %s %s: %w", kind, name, err)
	}
	webhooks, _, err := unstructured.NestedSlice(cfg.Object, "webhooks")
	if err != nil {
		return err
	}
	changed := false
	for _, w := range webhooks {
		hook, ok := w.(map[string]any)
		if !ok {
			continue
		}
		clientConfig, _ := hook["clientConfig"].(map[string]any)
		if clientConfig == nil {
			clientConfig = map[string]any{}
			hook["clientConfig"] = clientConfig
		}
		if clientConfig["caBundle"] != encoded {
			clientConfig["caBundle"], changed = encoded, true
		}
	}
	if !changed {
		return nil
	}
	if err := unstructured.SetNestedSlice(cfg.Object, webhooks, "webhooks"); err != nil {
		return err
	}
	return m.Client.Update(ctx, cfg)
}

// The certificate Secret is covered by the manager's rights on Secrets (it writes token
// Secrets in every namespace). The webhook configurations are named, so the manager can
// patch only its own.
// +kubebuilder:rbac:groups=admissionregistration.k8s.io,resources=mutatingwebhookconfigurations;validatingwebhookconfigurations,verbs=get;update,resourceNames=rolecall-mutating-webhook-configuration;rolecall-validating-webhook-configuration
