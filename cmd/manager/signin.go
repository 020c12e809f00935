package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	apiserver "k8s.io/apiserver/pkg/apis/apiserver"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rolecall/rolecall/internal/redeem"
)

// signInOptions configure the landing page's sign-in. By default they follow the
// authentication configuration: with one issuer, the browser signs in there as its first
// audience, which is the client the API server accepts ID tokens for.
type signInOptions struct {
	issuerURL, clientID, clientSecretFile, caFile string
	scopes                                        string
	sessionSecret                                 string
	disabled                                      bool
}

func (o *signInOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.issuerURL, "signin-issuer-url", "", "Issuer the landing page signs people in with (default: the one issuer of --authentication-config or --oidc-issuer-url).")
	fs.StringVar(&o.clientID, "signin-client-id", "", "OAuth client ID of the landing page (default: that issuer's first audience, or --oidc-client-id).")
	fs.StringVar(&o.clientSecretFile, "signin-client-secret-file", "", "File holding the client secret; leave empty for a public client (PKCE is always used).")
	fs.StringVar(&o.caFile, "signin-ca-file", "", "CA bundle for the issuer (default: the authentication configuration's certificateAuthority; else the system roots).")
	fs.StringVar(&o.scopes, "signin-scopes", "email,profile", "Comma-separated scopes requested besides openid.")
	fs.StringVar(&o.sessionSecret, "signin-key-secret", "rolecall-signin-key", "Secret in --namespace holding the key that seals sign-in cookies; created if missing, shared by all replicas.")
	fs.BoolVar(&o.disabled, "disable-signin", false, "Serve the landing page without browser sign-in (redeem with kubectl only).")
}

// build returns the sign-in configuration, or nil when no issuer is known.
func (o *signInOptions) build(ctx context.Context, mgr ctrl.Manager, jwtConfig *apiserver.AuthenticationConfiguration, opts options) (*redeem.SignIn, error) {
	if o.disabled {
		return nil, nil
	}
	issuer, clientID, caPEM, err := o.issuer(jwtConfig)
	if err != nil || issuer == "" {
		return nil, err
	}
	signIn := &redeem.SignIn{IssuerURL: issuer, ClientID: clientID, PublicURL: opts.publicURL, Scopes: splitList(o.scopes)}
	if o.clientSecretFile != "" {
		secret, err := os.ReadFile(o.clientSecretFile)
		if err != nil {
			return nil, fmt.Errorf("--signin-client-secret-file: %w", err)
		}
		signIn.ClientSecret = strings.TrimSpace(string(secret))
	}
	if signIn.HTTPClient, err = issuerClient(caPEM); err != nil {
		return nil, err
	}
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, err
	}
	signIn.SessionKey, err = redeem.SessionKey(ctx, direct, client.ObjectKey{Namespace: opts.namespace, Name: o.sessionSecret})
	return signIn, err
}

// issuer picks the issuer, client ID and CA from the flags, falling back to the only JWT
// issuer of the authentication configuration.
func (o *signInOptions) issuer(jwtConfig *apiserver.AuthenticationConfiguration) (issuer, clientID string, caPEM []byte, err error) {
	issuer, clientID = o.issuerURL, o.clientID
	if jwtConfig != nil && len(jwtConfig.JWT) == 1 {
		fromConfig := jwtConfig.JWT[0].Issuer
		if issuer == "" || issuer == fromConfig.URL {
			issuer, caPEM = fromConfig.URL, []byte(fromConfig.CertificateAuthority)
			if clientID == "" && len(fromConfig.Audiences) > 0 {
				clientID = fromConfig.Audiences[0]
			}
		}
	}
	if o.caFile != "" {
		if caPEM, err = os.ReadFile(o.caFile); err != nil {
			return "", "", nil, fmt.Errorf("--signin-ca-file: %w", err)
		}
	}
	if issuer != "" && clientID == "" {
		return "", "", nil, errors.New("--signin-client-id is required when the issuer's audience cannot be taken from the authentication configuration")
	}
	return issuer, clientID, caPEM, nil
}

func issuerClient(caPEM []byte) (*http.Client, error) {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	if len(caPEM) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("the issuer's CA bundle holds no PEM certificate")
		}
		transport.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &http.Client{Transport: transport, Timeout: 15 * time.Second}, nil
}

func splitList(v string) []string {
	var out []string
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}
