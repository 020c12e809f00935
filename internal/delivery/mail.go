package delivery

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	mail "github.com/wneessen/go-mail"
)

// TLS modes of the connection to the SMTP server.
const (
	// TLSStartTLS upgrades a plain connection with STARTTLS and refuses servers that cannot.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (usually port 465).
	TLSImplicit = "tls"
	// TLSNone sends in the clear: only for a relay on the same host or a test server.
	TLSNone = "none"
)

// Mail sends invites by SMTP.
type Mail struct {
	// Host and Port are the SMTP server's.
	Host string
	Port int
	// TLS is TLSStartTLS, TLSImplicit or TLSNone.
	TLS string
	// CAFile, if set, holds the CA certificates that the server's certificate must chain to
	// (instead of the system's).
	CAFile string
	// From is the sender address, such as "rolecall <invites@example.com>".
	From string
	// CredentialsDir, if set, holds files "username" and "password" (a Secret mounted
	// there), read for every message so that a rotated password needs no restart. Without a
	// "username" file (an optional Secret that does not exist) mail is sent unauthenticated.
	CredentialsDir string
	// TemplatesDir, if set, holds template overrides (see templates.go).
	TemplatesDir string
}

// Validate reports settings that can never work, naming the flag to fix.
func (m *Mail) Validate() error {
	switch {
	case m.Host == "":
		return errors.New("--smtp-host is required for mail delivery")
	case m.From == "":
		return errors.New("--smtp-from is required for mail delivery: the address invitations come from")
	case m.TLS != TLSStartTLS && m.TLS != TLSImplicit && m.TLS != TLSNone:
		return fmt.Errorf("--smtp-tls must be %s, %s or %s, got %q", TLSStartTLS, TLSImplicit, TLSNone, m.TLS)
	}
	if err := mail.NewMsg().From(m.From); err != nil {
		return fmt.Errorf("--smtp-from: %w", err)
	}
	return nil
}

// Channel is "email".
func (m *Mail) Channel() string { return "email" }

// Send renders the invite and sends it to invite.Email.
func (m *Mail) Send(ctx context.Context, invite Invite) error {
	if invite.Email == "" {
		return Permanent(errors.New("the invitation has no email address to send to"))
	}
	if invite.Inviter == "" {
		return Permanent(errors.New("the invitation names no inviter, and mail always says who invited"))
	}
	msg, err := m.message(invite)
	if err != nil {
		return Permanent(err)
	}
	client, err := m.client()
	if err != nil {
		return err
	}
	return classifySMTP(client.DialAndSendWithContext(ctx, msg))
}

func (m *Mail) message(invite Invite) (*mail.Msg, error) {
	content, err := render(m.TemplatesDir, invite)
	if err != nil {
		return nil, fmt.Errorf("rendering the mail templates: %w", err)
	}
	msg := mail.NewMsg()
	if err := msg.From(m.From); err != nil {
		return nil, err
	}
	if err := msg.To(invite.Email); err != nil {
		return nil, err
	}
	msg.Subject(content.subject)
	msg.SetDate()
	msg.SetMessageID()
	msg.SetBodyString(mail.TypeTextPlain, content.text)
	msg.AddAlternativeString(mail.TypeTextHTML, content.html)
	return msg, nil
}

func (m *Mail) client() (*mail.Client, error) {
	tlsConfig := &tls.Config{ServerName: m.Host, MinVersion: tls.VersionTLS12}
	if m.CAFile != "" {
		pem, err := os.ReadFile(m.CAFile)
		if err != nil {
			return nil, err
		}
		tlsConfig.RootCAs = x509.NewCertPool()
		if !tlsConfig.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s holds no PEM certificate", m.CAFile)
		}
	}
	opts := []mail.Option{mail.WithPort(m.Port), mail.WithTLSConfig(tlsConfig)}
	switch m.TLS {
	case TLSImplicit:
		opts = append(opts, mail.WithSSL())
	case TLSNone:
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
	default:
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
	}
	auth, err := m.auth()
	if err != nil {
		return nil, err
	}
	return mail.NewClient(m.Host, append(opts, auth...)...)
}

// auth reads the credentials, if any. PLAIN is what nearly every submission server takes,
// and go-mail refuses to send it over an unencrypted connection.
func (m *Mail) auth() ([]mail.Option, error) {
	if m.CredentialsDir == "" {
		return nil, nil
	}
	username, err := readTrimmed(filepath.Join(m.CredentialsDir, "username"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	password, err := readTrimmed(filepath.Join(m.CredentialsDir, "password"))
	if err != nil {
		return nil, err
	}
	return []mail.Option{mail.WithSMTPAuth(mail.SMTPAuthPlain), mail.WithUsername(username), mail.WithPassword(password)}, nil
}

func readTrimmed(path string) (string, error) {
	data, err := os.ReadFile(path) //nolint:gosec // the operator's own credentials folder
	if err != nil {
		return "", fmt.Errorf("reading SMTP credentials: %w", err)
	}
	return strings.TrimSpace(string(data)), nil
}

// classifySMTP marks a 5xx answer from the server (for example an unknown recipient) as
// permanent; connection problems and 4xx answers are worth another try.
func classifySMTP(err error) error {
	var sendErr *mail.SendError
	if errors.As(err, &sendErr) && sendErr.ErrorCode() >= 500 {
		return Permanent(err)
	}
	return err
}
