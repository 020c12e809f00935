// Package mailpit runs a local mailpit (github.com/axllent/mailpit), a real SMTP server
// with a web UI and a JSON API, for `make dev` and the tests: mail that rolecall sends
// arrives there and can be read back.
package mailpit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"time"
)

// Version is the mailpit release the Makefile installs into bin/.
const Version = "v1.27.11"

// Options say how to run mailpit. Zero values pick free loopback ports.
type Options struct {
	// Binary is mailpit's path; empty means $MAILPIT, then bin/mailpit-<Version>.
	Binary string
	// Dir holds the database; empty means a new temporary folder.
	Dir string
	// SMTPAddr and UIAddr are host:port to listen on; empty means a free loopback port.
	SMTPAddr, UIAddr string
	// Extra are further command-line arguments (TLS certificates, authentication...).
	Extra []string
	// Stdout and Stderr receive mailpit's output; nil discards it.
	Stdout, Stderr *os.File
}

// Server is a running mailpit.
type Server struct {
	// SMTPHost and SMTPPort are where it accepts mail.
	SMTPHost string
	SMTPPort int
	// URL is its web UI and API.
	URL string
	cmd *exec.Cmd
}

// Start runs mailpit and waits until its API answers. It stops when ctx ends, or with Stop.
func Start(ctx context.Context, opts Options) (*Server, error) {
	binary, err := binaryPath(opts.Binary)
	if err != nil {
		return nil, err
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", "mailpit-"); err != nil {
			return nil, err
		}
	}
	smtpAddr, uiAddr := orFreePort(opts.SMTPAddr), orFreePort(opts.UIAddr)
	args := append([]string{"--smtp", smtpAddr, "--listen", uiAddr, "--database", filepath.Join(opts.Dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--quiet"}, opts.Extra...)
	cmd := exec.CommandContext(ctx, binary, args...) //nolint:gosec // the mailpit binary the Makefile installed
	cmd.Stdout, cmd.Stderr = opts.Stdout, opts.Stderr
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	host, port, _ := net.SplitHostPort(smtpAddr)
	s := &Server{SMTPHost: host, URL: "http://" + uiAddr, cmd: cmd}
	s.SMTPPort, _ = strconv.Atoi(port)
	return s, s.waitReady(ctx)
}

// Stop ends mailpit.
func (s *Server) Stop() {
	if s.cmd.Process != nil {
		_ = s.cmd.Process.Kill()
		_ = s.cmd.Wait()
	}
}

func (s *Server) waitReady(ctx context.Context) error {
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := s.Messages(ctx); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	s.Stop()
	return errors.New("mailpit did not answer within 30s")
}

// binaryPath finds mailpit: the explicit path, $MAILPIT, or the Makefile's bin/.
func binaryPath(explicit string) (string, error) {
	candidates := []string{explicit, os.Getenv("MAILPIT"), filepath.Join(repoRoot(), "bin", "mailpit-"+Version)}
	for _, path := range candidates {
		if path == "" {
			continue
		}
		if _, err := os.Stat(path); err == nil { //nolint:gosec // the operator chooses which binary to run
			return path, nil
		}
	}
	return "", fmt.Errorf("mailpit not found: run `make mailpit` (go install github.com/axllent/mailpit@%s) or set MAILPIT", Version)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

func orFreePort(addr string) string {
	if addr != "" {
		return addr
	}
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "127.0.0.1:0"
	}
	defer func() { _ = l.Close() }()
	return l.Addr().String()
}

// Address is a mail address as mailpit reports it.
type Address struct {
	Name    string `json:"Name"`
	Address string `json:"Address"`
}

// Summary is a message in mailpit's list.
type Summary struct {
	ID      string    `json:"ID"`
	From    Address   `json:"From"`
	To      []Address `json:"To"`
	Subject string    `json:"Subject"`
}

// Message is one message in full.
type Message struct {
	Summary
	Text string `json:"Text"`
	HTML string `json:"HTML"`
}

// Messages lists the messages received, newest first.
func (s *Server) Messages(ctx context.Context) ([]Summary, error) {
	var list struct {
		Messages []Summary `json:"messages"`
	}
	return list.Messages, s.get(ctx, "/api/v1/messages", &list)
}

// Message reads one message.
func (s *Server) Message(ctx context.Context, id string) (Message, error) {
	var m Message
	return m, s.get(ctx, "/api/v1/message/"+url.PathEscape(id), &m)
}

func (s *Server) get(ctx context.Context, path string, into any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("mailpit answered %s for %s", resp.Status, path)
	}
	return json.NewDecoder(resp.Body).Decode(into)
}
