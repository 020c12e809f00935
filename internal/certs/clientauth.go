package certs

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"slices"
)

// RequireClientCertificate returns the TLS setting that makes the webhook server answer
// only the API server: every connection must present a client certificate signed by a CA
// in caFile (kube-apiserver presents one when its AdmissionConfiguration names it for the
// webhook's host), and, when names is not empty, the certificate must carry one of them as
// its CommonName or as a DNS name. Anything else is refused during the TLS handshake,
// before a request is read: the admission handlers answer with facts about policies and
// people's rights that only the API server may ask for.
//
// The CA is read once: a new CA takes effect when the manager restarts.
func RequireClientCertificate(caFile string, names []string) (func(*tls.Config), error) {
	pool, err := loadCAs(caFile)
	if err != nil {
		return nil, err
	}
	return func(cfg *tls.Config) {
		cfg.MinVersion = tls.VersionTLS12
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
		cfg.ClientCAs = pool
		if len(names) > 0 {
			// Runs after the chain was verified against the pool.
			cfg.VerifyConnection = func(cs tls.ConnectionState) error {
				return checkClientName(cs.PeerCertificates, names)
			}
		}
	}, nil
}

func loadCAs(caFile string) (*x509.CertPool, error) {
	data, err := os.ReadFile(caFile) //nolint:gosec // a file the operator names in a flag
	if err != nil {
		return nil, fmt.Errorf("--webhook-client-ca-file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--webhook-client-ca-file: %s holds no PEM certificate", caFile)
	}
	return pool, nil
}

// checkClientName accepts a client certificate whose CommonName or one of whose DNS names
// is in names.
func checkClientName(chain []*x509.Certificate, names []string) error {
	if len(chain) == 0 {
		return errors.New("no client certificate")
	}
	leaf := chain[0]
	if slices.Contains(names, leaf.Subject.CommonName) {
		return nil
	}
	for _, dns := range leaf.DNSNames {
		if slices.Contains(names, dns) {
			return nil
		}
	}
	return fmt.Errorf("client certificate %q is not one of the names --webhook-client-names allows", leaf.Subject.CommonName)
}
