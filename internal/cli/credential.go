package cli

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/transport"
)

// bearerCredential is the credential the kubeconfig's user presents to the API server as
// "Authorization: Bearer": a token, a token file, or what an exec or auth-provider plugin
// (an OIDC login, a cloud's token helper) hands out. client-go's own transport wrappers
// produce it, so every kind of kubeconfig works as it does for kubectl, refreshing
// included; the request they wrap is captured here and never sent.
func bearerCredential(ctx context.Context, config *rest.Config) (string, error) {
	if err := refuseImpersonation(config); err != nil {
		return "", err
	}
	transportConfig, err := config.TransportConfig()
	if err != nil {
		return "", err
	}
	capture := &authorizationCapture{}
	rt, err := transport.HTTPWrappersForConfig(transportConfig, capture)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "https://kubernetes.invalid/", nil)
	if err != nil {
		return "", err
	}
	resp, err := rt.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("getting your kubeconfig's credential: %w", err)
	}
	_ = resp.Body.Close()
	return capture.bearer()
}

// refuseImpersonation: the redemption server binds the roles to whoever the credential
// belongs to, and cannot honour --as.
func refuseImpersonation(config *rest.Config) error {
	if config.Impersonate.UserName != "" || config.Impersonate.UID != "" || len(config.Impersonate.Groups) > 0 || len(config.Impersonate.Extra) > 0 {
		return errors.New("redeem cannot act for someone else (--as or the kubeconfig's \"as\"): the roles go to whoever the credential belongs to")
	}
	return nil
}

// authorizationCapture is the innermost round tripper: it records the Authorization header
// the wrappers set and answers without touching the network.
type authorizationCapture struct {
	mu            sync.Mutex
	authorization string
}

func (a *authorizationCapture) RoundTrip(req *http.Request) (*http.Response, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.authorization = req.Header.Get("Authorization")
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{}, Body: http.NoBody, Request: req}, nil
}

func (a *authorizationCapture) bearer() (string, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	credential, ok := strings.CutPrefix(a.authorization, "Bearer ")
	if !ok || strings.TrimSpace(credential) == "" {
		return "", errors.New("your kubeconfig's user has no bearer credential (it authenticates with a client certificate, or a username and password); " +
			"the redemption server needs one, such as an OIDC ID token or a service account token: use a context whose user has one")
	}
	return credential, nil
}
