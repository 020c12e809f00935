package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/rolecall/rolecall/internal/testing/mailpit"
)

// startMailpit runs mailpit on loopback, its database and log under bin/dev/mailpit.
func startMailpit(ctx context.Context) (*mailpit.Server, error) {
	dir := filepath.Join(devDir, "mailpit")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "mailpit.log")) //nolint:gosec // a fixed path under bin/dev
	if err != nil {
		return nil, err
	}
	// Each run starts with an empty mailbox, like the rest of the control plane.
	_ = os.Remove(filepath.Join(dir, "mailpit.db"))
	return mailpit.Start(ctx, mailpit.Options{Dir: dir, Stdout: log, Stderr: log})
}

// smtpArgs point the manager's mail delivery at mailpit. Plain SMTP is fine on loopback.
func smtpArgs(mail *mailpit.Server) []string {
	return []string{
		"--smtp-host=" + mail.SMTPHost, fmt.Sprintf("--smtp-port=%d", mail.SMTPPort),
		"--smtp-tls=none", "--smtp-from=rolecall (development) <invites@rolecall.example>",
	}
}
