package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"time"

	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/manager"
)

// deliveryOptions configure the channels that hand links to people, and the identity
// provider hook.
type deliveryOptions struct {
	mail              delivery.Mail
	webhookURL        string
	webhookSecretFile string
	idpHookURL        string
	idpHookSecretFile string
	deliveryBackoff   time.Duration
	limits            delivery.Limits
}

func (o *deliveryOptions) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.mail.Host, "smtp-host", "", "SMTP server that sends invitation mail (spec.delivery.email); empty disables mail.")
	fs.IntVar(&o.mail.Port, "smtp-port", 587, "SMTP server port.")
	fs.StringVar(&o.mail.TLS, "smtp-tls", delivery.TLSStartTLS, `How to protect the SMTP connection: "starttls" (required, not opportunistic), "tls" (implicit, usually port 465) or "none" (a relay on the same host only).`)
	fs.StringVar(&o.mail.CAFile, "smtp-ca-file", "", "CA certificates the SMTP server's certificate must chain to (default: the system's).")
	fs.StringVar(&o.mail.From, "smtp-from", "", `Sender of invitation mail, such as "Platform team <invites@example.com>".`)
	fs.StringVar(&o.mail.CredentialsDir, "smtp-credentials-dir", "", `Folder with files "username" and "password" for SMTP authentication (a mounted Secret; read for every message).`)
	fs.StringVar(&o.mail.TemplatesDir, "mail-templates-dir", "", "Folder whose subject.txt, body.txt and body.html replace the built-in mail templates (a mounted ConfigMap).")
	fs.StringVar(&o.webhookURL, "delivery-webhook-url", "", "URL that receives invitation links as signed JSON (spec.delivery.webhook) for a chat or ticket system.")
	fs.StringVar(&o.webhookSecretFile, "delivery-webhook-secret-file", "", "File holding the HMAC key that signs delivery webhook requests.")
	fs.StringVar(&o.idpHookURL, "idp-hook-url", "", "URL that adds people to identity provider groups (grants with idpGroup) and removes them, as signed JSON.")
	fs.StringVar(&o.idpHookSecretFile, "idp-hook-secret-file", "", "File holding the HMAC key that signs identity provider hook requests.")
	fs.DurationVar(&o.deliveryBackoff, "delivery-backoff", 10*time.Second, "Wait after a failed delivery; it doubles with each further failure (5 attempts).")
	o.limits = delivery.DefaultLimits
	fs.DurationVar(&o.limits.Cooldown, "delivery-cooldown", o.limits.Cooldown, "Least time between two deliveries of one invitation; a resend sooner waits (Delivered=False, reason Throttled).")
	fs.IntVar(&o.limits.PerInvitation, "delivery-max-per-invitation", o.limits.PerInvitation, "Most deliveries of one invitation (all its resends) per hour.")
	fs.IntVar(&o.limits.PerRecipient, "delivery-max-per-recipient", o.limits.PerRecipient, "Most deliveries to one address per hour, across all invitations.")
}

func (o *deliveryOptions) validate() error {
	if o.mail.Host != "" {
		if err := o.mail.Validate(); err != nil {
			return err
		}
	}
	if err := validateHook("--delivery-webhook-url", o.webhookURL, "--delivery-webhook-secret-file", o.webhookSecretFile); err != nil {
		return err
	}
	if o.deliveryBackoff <= 0 {
		return errors.New("--delivery-backoff must be positive")
	}
	if err := o.limits.Validate(); err != nil {
		return err
	}
	return validateHook("--idp-hook-url", o.idpHookURL, "--idp-hook-secret-file", o.idpHookSecretFile)
}

// validateHook: a hook needs an absolute URL and a key; requests are never sent unsigned.
func validateHook(urlFlag, raw, secretFlag, secretFile string) error {
	if raw == "" {
		return nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s must be an absolute http or https URL, got %q", urlFlag, raw)
	}
	if secretFile == "" {
		return fmt.Errorf("%s needs %s: requests are always signed", urlFlag, secretFlag)
	}
	return nil
}

// apply puts the configured channels into the manager's configuration.
func (o *deliveryOptions) apply(cfg *manager.Config) {
	if o.mail.Host != "" {
		mail := o.mail
		cfg.Mail = &mail
	}
	if o.webhookURL != "" {
		cfg.Webhook = &delivery.Webhook{Poster: &delivery.SignedPoster{URL: o.webhookURL, SecretFile: o.webhookSecretFile}}
	}
	if o.idpHookURL != "" {
		cfg.IDPHook = &delivery.IDPHook{Poster: &delivery.SignedPoster{URL: o.idpHookURL, SecretFile: o.idpHookSecretFile}}
	}
	cfg.DeliveryBackoff = o.deliveryBackoff
	cfg.DeliveryLimits = o.limits
}
