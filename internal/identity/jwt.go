package identity

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	apiserver "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/server/dynamiccertificates"
	"k8s.io/apiserver/plugin/pkg/authenticator/token/oidc"
)

// JWT verifies ID tokens with kube-apiserver's own JWT authenticator, built from the same
// configuration, so that issuer, audience, claim validation rules and the username and
// groups mappings (claims, prefixes, CEL) cannot drift from the cluster's.
type JWT struct {
	authenticators []authenticator.Token
}

// NewJWT builds one authenticator per configured issuer. Keys are fetched in the
// background; until they arrive, tokens from that issuer are reported unavailable.
func NewJWT(ctx context.Context, cfg *apiserver.AuthenticationConfiguration) (*JWT, error) {
	j := &JWT{}
	for _, jwt := range cfg.JWT {
		opts := oidc.Options{JWTAuthenticator: jwt, SupportedSigningAlgs: oidc.AllValidSigningAlgorithms()}
		if jwt.Issuer.CertificateAuthority != "" {
			ca, err := dynamiccertificates.NewStaticCAContent("rolecall-oidc", []byte(jwt.Issuer.CertificateAuthority))
			if err != nil {
				return nil, fmt.Errorf("issuer %s: certificateAuthority: %w", jwt.Issuer.URL, err)
			}
			opts.CAContentProvider = ca
		}
		a, err := oidc.New(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("issuer %s: %w", jwt.Issuer.URL, err)
		}
		j.authenticators = append(j.authenticators, a)
	}
	return j, nil
}

// Authenticate implements Authenticator.
func (j *JWT) Authenticate(ctx context.Context, credential string) (User, error) {
	if strings.Count(credential, ".") != 2 {
		return User{}, ErrUnauthenticated
	}
	var failures []error
	for _, a := range j.authenticators {
		resp, ok, err := a.AuthenticateToken(ctx, credential)
		if ok && err == nil {
			return userFromResponse(resp, credential)
		}
		if err != nil {
			failures = append(failures, err)
		}
	}
	for _, err := range failures {
		// The authenticator says so until it has fetched the issuer's keys. The message is
		// compared whole: other errors quote parts of the token (its alg, say), which anyone
		// can choose, and must not pass for an unavailable issuer.
		if err.Error() == notInitialized {
			return User{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
		}
	}
	return User{}, fmt.Errorf("%w: %v", ErrUnauthenticated, errors.Join(failures...))
}

// notInitialized is the whole error of kube-apiserver's JWT authenticator before it has
// the issuer's keys.
const notInitialized = "oidc: authenticator not initialized"

func userFromResponse(resp *authenticator.Response, credential string) (User, error) {
	u := User{
		Username: resp.User.GetName(), UID: resp.User.GetUID(),
		Groups: resp.User.GetGroups(), Extra: resp.User.GetExtra(),
	}
	// The signature, issuer and audience were verified above; the payload can be read as is.
	claims, err := payload(credential)
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", ErrUnauthenticated, err)
	}
	u.Email, _ = claims["email"].(string)
	u.EmailVerified, _ = claims["email_verified"].(bool)
	return u, nil
}

func payload(jwt string) (map[string]any, error) {
	parts := strings.Split(jwt, ".")
	data, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, fmt.Errorf("decoding the token payload: %w", err)
	}
	claims := map[string]any{}
	if err := json.Unmarshal(data, &claims); err != nil {
		return nil, fmt.Errorf("parsing the token payload: %w", err)
	}
	return claims, nil
}
