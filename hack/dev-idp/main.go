// Command dev-idp runs the development OpenID provider (internal/testing/devidp) on its own, with
// the demo users and one client, and stops on Ctrl-C. Point kube-apiserver's
// AuthenticationConfiguration at the issuer it prints, with the CA file as
// certificateAuthority.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rolecall/rolecall/internal/testing/devidp"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev-idp:", err)
		os.Exit(1)
	}
}

func run() error {
	addr := flag.String("addr", "127.0.0.1:0", "loopback address to listen on; port 0 picks a free one")
	dir := flag.String("dir", "bin/dev/idp", "directory to write the CA certificate (ca.crt) to")
	clientID := flag.String("client-id", "rolecall", "ID of the public client (PKCE, no secret)")
	var redirects []string
	flag.Func("redirect-uri", "redirect URI of the client; repeatable (default http://127.0.0.1:8082/callback)",
		func(s string) error { redirects = append(redirects, s); return nil })
	flag.Parse()
	if len(redirects) == 0 {
		redirects = []string{"http://127.0.0.1:8082/callback"}
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	// The op package logs refused requests through the default logger; show them, they
	// explain why a sign-in failed. They never contain passwords or tokens.
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(logger)

	users := devidp.DemoUsers()
	srv, err := devidp.Start(ctx, devidp.Options{
		Addr:         *addr,
		Dir:          *dir,
		Users:        users,
		Clients:      []devidp.Client{{ID: *clientID, RedirectURIs: redirects}},
		ShowDemoHint: true,
		Logger:       logger,
	})
	if err != nil {
		return err
	}
	defer func() { _ = srv.Close() }()

	fmt.Printf("issuer:        %s\n", srv.Issuer)
	fmt.Printf("CA file:       %s\n", srv.CAFile)
	fmt.Printf("client:        %s (public, PKCE S256), redirect URIs: %s\n", *clientID, strings.Join(redirects, " "))
	fmt.Println("users (the password is the username):")
	for _, u := range users {
		verified := "verified"
		if !u.EmailVerified {
			verified = "NOT verified"
		}
		fmt.Printf("  %-6s %s (%s), groups %v\n", u.Username, u.Email, verified, u.Groups)
	}
	fmt.Println("Ctrl-C stops it.")
	<-ctx.Done()
	return nil
}
