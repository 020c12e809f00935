package main

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/rolecall/rolecall/internal/redeem"
	"github.com/rolecall/rolecall/internal/testing/devidp"
	"github.com/rolecall/rolecall/internal/testing/oidcconfig"
)

// devClientID is the OAuth client of the landing page, and the audience kube-apiserver
// accepts ID tokens for.
const devClientID = "rolecall"

// startIdentityProvider starts the development OpenID provider with the demo users, and
// writes the AuthenticationConfiguration that kube-apiserver and the manager both read.
func startIdentityProvider(ctx context.Context, redeemURL string) (*devidp.Server, string, error) {
	dir := filepath.Join(devDir, "idp")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, "", err
	}
	// The provider's OpenID library logs through the default slog logger: to a file, like
	// the other processes' logs.
	logFile, err := os.Create(filepath.Join(devDir, "idp.log"))
	if err != nil {
		return nil, "", err
	}
	slog.SetDefault(slog.New(slog.NewTextHandler(logFile, nil)))
	idp, err := devidp.Start(ctx, devidp.Options{
		Addr: "127.0.0.1:0", Dir: dir, Users: devidp.DemoUsers(), ShowDemoHint: true,
		Clients: []devidp.Client{{ID: devClientID, RedirectURIs: []string{redeemURL + redeem.CallbackPath}}},
	})
	if err != nil {
		return nil, "", err
	}
	path, err := oidcconfig.Write(dir, oidcconfig.Issuer{
		URL: idp.Issuer, CAPEM: idp.CAPEM, Audience: devClientID, UsernamePrefix: "oidc:", GroupsPrefix: "oidc:",
	})
	if err != nil {
		_ = idp.Close()
		return nil, "", err
	}
	return idp, path, nil
}
