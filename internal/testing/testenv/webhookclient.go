package testenv

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// WebhookClientName is the CommonName of the certificate kube-apiserver presents to the
// admission webhooks in test and development clusters.
const WebhookClientName = "kube-apiserver-admission"

// WebhookClient is the identity kube-apiserver presents to rolecall's admission webhooks.
type WebhookClient struct {
	// CAFile holds the CA that signed the certificate: the manager's --webhook-client-ca-file.
	CAFile string
	// Name is the certificate's CommonName: the manager's --webhook-client-names.
	Name string
	// Certificate is what the API server presents, for tests that play the API server.
	Certificate tls.Certificate
}

// PresentWebhookClientCert configures env's kube-apiserver, before env starts, to present a
// client certificate to the admission webhooks, as a production cluster is configured to:
// an AdmissionConfiguration (--admission-control-config-file) whose webhook plugins read a
// kubeconfig with a user entry, named for the webhook server's host:port, holding the
// certificate. It fixes the webhook server's address so that the entry can name it, and
// writes its files into dir.
func PresentWebhookClientCert(env *envtest.Environment, dir string) (*WebhookClient, error) {
	hook := &env.WebhookInstallOptions
	if hook.LocalServingPort == 0 {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		hook.LocalServingHost, hook.LocalServingPort = "127.0.0.1", port
	}
	ca, err := NewClientCA("rolecall-test-webhook-client-ca")
	if err != nil {
		return nil, err
	}
	cert, certPEM, keyPEM, err := ca.Issue(WebhookClientName)
	if err != nil {
		return nil, err
	}
	client := &WebhookClient{CAFile: filepath.Join(dir, "webhook-client-ca.crt"), Name: WebhookClientName, Certificate: cert}
	if err := os.WriteFile(client.CAFile, ca.PEM, 0o600); err != nil {
		return nil, err
	}
	hostPort := net.JoinHostPort(hook.LocalServingHost, strconv.Itoa(hook.LocalServingPort))
	admissionConfig, err := writeAdmissionConfig(dir, hostPort, certPEM, keyPEM)
	if err != nil {
		return nil, err
	}
	env.ControlPlane.GetAPIServer().Configure().Set("admission-control-config-file", admissionConfig)
	return client, nil
}

// writeAdmissionConfig writes the kubeconfig that gives the webhook at hostPort the client
// certificate, and the AdmissionConfiguration that points both webhook plugins at it.
func writeAdmissionConfig(dir, hostPort string, certPEM, keyPEM []byte) (string, error) {
	kubeconfig := clientcmdapi.NewConfig()
	kubeconfig.AuthInfos[hostPort] = &clientcmdapi.AuthInfo{ClientCertificateData: certPEM, ClientKeyData: keyPEM}
	kubeconfigPath := filepath.Join(dir, "admission-kubeconfig.yaml")
	if err := clientcmd.WriteToFile(*kubeconfig, kubeconfigPath); err != nil {
		return "", err
	}
	plugin := func(name string) string {
		return fmt.Sprintf(`- name: %s
  configuration:
    apiVersion: apiserver.config.k8s.io/v1
    kind: WebhookAdmissionConfiguration
    kubeConfigFile: %q
`, name, kubeconfigPath)
	}
	config := "apiVersion: apiserver.config.k8s.io/v1\nkind: AdmissionConfiguration\nplugins:\n" +
		plugin("ValidatingAdmissionWebhook") + plugin("MutatingAdmissionWebhook")
	path := filepath.Join(dir, "admission-config.yaml")
	return path, os.WriteFile(path, []byte(config), 0o600)
}

// ClientCA issues client certificates, for tests and development clusters.
type ClientCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	// PEM is the CA certificate.
	PEM []byte
}

// NewClientCA makes a CA; it and the certificates it issues last a year, longer than any
// test run or development cluster.
func NewClientCA(name string) (*ClientCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	template := certTemplate(name)
	template.IsCA, template.KeyUsage = true, x509.KeyUsageCertSign
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &ClientCA{cert: cert, key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}, nil
}

// Issue makes a client certificate with this CommonName, as a tls.Certificate and in PEM.
func (ca *ClientCA) Issue(commonName string) (tls.Certificate, []byte, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	template := certTemplate(commonName)
	template.KeyUsage, template.ExtKeyUsage = x509.KeyUsageDigitalSignature, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	der, err := x509.CreateCertificate(rand.Reader, template, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return tls.Certificate{}, nil, nil, err
	}
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	return cert, certPEM, keyPEM, err
}

func certTemplate(commonName string) *x509.Certificate {
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	now := time.Now()
	return &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: commonName},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(365 * 24 * time.Hour),
		BasicConstraintsValid: true,
	}
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}
