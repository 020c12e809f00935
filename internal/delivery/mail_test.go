package delivery_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/testing/mailpit"
)

var invite = delivery.Invite{
	Name: "alice", Namespace: "team-a", Email: "alice@example.com", Inviter: "bob",
	Grants:    []string{"edit in namespace team-a", "view in namespace team-a-prod"},
	URL:       "https://invite.example.com/i/k7qf9x2a.secret",
	ExpiresAt: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC),
}

func mailTo(server *mailpit.Server) *delivery.Mail {
	return &delivery.Mail{Host: server.SMTPHost, Port: server.SMTPPort, TLS: delivery.TLSNone, From: "Platform team <invites@example.com>"}
}

var _ = Describe("Mail delivery through a real SMTP server (mailpit)", func() {
	It("sends a message that says who invited whom to what, until when, with the link in both parts", func(ctx SpecContext) {
		server := startMailpit(ctx)
		Expect(mailTo(server).Send(ctx, invite)).To(Succeed())

		msg := onlyMessage(ctx, server)
		Expect(msg.To).To(ConsistOf(mailpit.Address{Address: "alice@example.com"}))
		Expect(msg.From.Address).To(Equal("invites@example.com"))
		Expect(msg.Subject).To(Equal("bob invited you to team-a on Kubernetes"))
		for _, part := range []string{msg.Text, msg.HTML} {
			Expect(part).To(ContainSubstring(invite.URL))
			Expect(part).To(ContainSubstring("edit in namespace team-a"))
			Expect(part).To(ContainSubstring("view in namespace team-a-prod"))
			Expect(part).To(ContainSubstring("Tue, 01 Dec 2026 10:00:00 UTC"))
		}
	})

	It("escapes what users control in the HTML part", func(ctx SpecContext) {
		server := startMailpit(ctx)
		hostile := invite
		hostile.Inviter = `<img src=x onerror=alert(1)>`
		Expect(mailTo(server).Send(ctx, hostile)).To(Succeed())
		Expect(onlyMessage(ctx, server).HTML).NotTo(ContainSubstring("<img src=x"))
	})

	It("says plainly what accepting removes when the invitation replaces earlier grants", func(ctx SpecContext) {
		server := startMailpit(ctx)
		replacing := invite
		replacing.Replaces = []string{"namespace team-a", "namespace team-a-prod"}
		Expect(mailTo(server).Send(ctx, replacing)).To(Succeed())
		msg := onlyMessage(ctx, server)
		for _, part := range []string{msg.Text, msg.HTML} {
			Expect(part).To(ContainSubstring("Accepting also removes the roles that earlier rolecall invitations gave you in:"))
			Expect(part).To(ContainSubstring("namespace team-a-prod"))
			Expect(part).To(ContainSubstring("This invitation replaces them."))
		}

		By("saying nothing of the kind for an invitation that only adds")
		Expect(mailTo(server).Send(ctx, invite)).To(Succeed())
		Eventually(func(g Gomega) {
			list, err := server.Messages(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list).To(HaveLen(2))
			added, err := server.Message(ctx, list[0].ID)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(added.Text).NotTo(ContainSubstring("removes"))
		}).Should(Succeed())
	})

	It("refuses, as a permanent failure, a template override that does not say who invited", func(ctx SpecContext) {
		server := startMailpit(ctx)
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "body.txt"), []byte("Your company invites you: {{.URL}}\n"), 0o600)).To(Succeed())
		m := mailTo(server)
		m.TemplatesDir = dir
		err := m.Send(ctx, invite)
		Expect(err).To(MatchError(ContainSubstring("body.txt does not name the inviter")))
		Expect(delivery.IsPermanent(err)).To(BeTrue())

		anonymous := invite
		anonymous.Inviter = ""
		err = mailTo(server).Send(ctx, anonymous)
		Expect(err).To(MatchError(ContainSubstring("names no inviter")))
		Expect(delivery.IsPermanent(err)).To(BeTrue())
		Consistently(func(g Gomega) {
			list, err := server.Messages(ctx)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(list).To(BeEmpty())
		}).WithTimeout(500 * time.Millisecond).Should(Succeed())
	})

	It("uses template overrides from a folder (a mounted ConfigMap), read for every message", func(ctx SpecContext) {
		server := startMailpit(ctx)
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "subject.txt"), []byte("Welcome to {{.Namespace}}\n"), 0o600)).To(Succeed())
		m := mailTo(server)
		m.TemplatesDir = dir
		Expect(m.Send(ctx, invite)).To(Succeed())

		msg := onlyMessage(ctx, server)
		Expect(msg.Subject).To(Equal("Welcome to team-a"))
		Expect(msg.Text).To(ContainSubstring(invite.URL), "the body falls back to the built-in template")
	})

	It("refuses a broken template override as a permanent failure, naming the template", func(ctx SpecContext) {
		server := startMailpit(ctx)
		dir := GinkgoT().TempDir()
		Expect(os.WriteFile(filepath.Join(dir, "body.txt"), []byte("{{.NoSuchField}}"), 0o600)).To(Succeed())
		m := mailTo(server)
		m.TemplatesDir = dir
		err := m.Send(ctx, invite)
		Expect(err).To(MatchError(ContainSubstring("body.txt")))
		Expect(delivery.IsPermanent(err)).To(BeTrue())
	})

	It("reports a recipient the server refuses as permanent, and a server that is down as worth retrying", func(ctx SpecContext) {
		server := startMailpit(ctx, "--smtp-allowed-recipients", "@example\\.org$")
		err := mailTo(server).Send(ctx, invite)
		Expect(err).To(HaveOccurred())
		Expect(delivery.IsPermanent(err)).To(BeTrue())

		down := &delivery.Mail{Host: "127.0.0.1", Port: closedPort(), TLS: delivery.TLSNone, From: "invites@example.com"}
		err = down.Send(ctx, invite)
		Expect(err).To(HaveOccurred())
		Expect(delivery.IsPermanent(err)).To(BeFalse())
	})

	Context("with STARTTLS and authentication", func() {
		It("sends over TLS verified against the given CA, with the credentials from the folder", func(ctx SpecContext) {
			certFile, keyFile := selfSignedCertificate()
			server := startMailpit(ctx, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile,
				"--smtp-require-starttls", "--smtp-auth-accept-any")
			creds := GinkgoT().TempDir()
			Expect(os.WriteFile(filepath.Join(creds, "username"), []byte("rolecall\n"), 0o600)).To(Succeed())
			Expect(os.WriteFile(filepath.Join(creds, "password"), []byte("s3cret\n"), 0o600)).To(Succeed())
			m := mailTo(server)
			m.TLS, m.CAFile, m.CredentialsDir = delivery.TLSStartTLS, certFile, creds

			Expect(m.Send(ctx, invite)).To(Succeed())
			Expect(onlyMessage(ctx, server).Subject).To(ContainSubstring("invited you"))
		})

		It("sends unauthenticated when the credentials folder holds no username (an optional Secret that is absent)", func(ctx SpecContext) {
			server := startMailpit(ctx)
			m := mailTo(server)
			m.CredentialsDir = GinkgoT().TempDir()
			Expect(m.Send(ctx, invite)).To(Succeed())
		})

		It("refuses a server whose certificate the CA does not vouch for", func(ctx SpecContext) {
			certFile, keyFile := selfSignedCertificate()
			otherCA, _ := selfSignedCertificate()
			server := startMailpit(ctx, "--smtp-tls-cert", certFile, "--smtp-tls-key", keyFile, "--smtp-require-starttls")
			m := mailTo(server)
			m.TLS, m.CAFile = delivery.TLSStartTLS, otherCA
			Expect(m.Send(ctx, invite)).To(MatchError(ContainSubstring("certificate")))
		})

		It("does not fall back to plain text when the server offers no STARTTLS", func(ctx SpecContext) {
			server := startMailpit(ctx)
			m := mailTo(server)
			m.TLS = delivery.TLSStartTLS
			Expect(m.Send(ctx, invite)).To(HaveOccurred())
			Expect(server.Messages(ctx)).To(BeEmpty())
		})
	})

	DescribeTable("settings that can never work are refused with the flag to fix",
		func(m delivery.Mail, message string) {
			Expect(m.Validate()).To(MatchError(ContainSubstring(message)))
		},
		Entry("no sender", delivery.Mail{Host: "smtp.example.com", TLS: delivery.TLSStartTLS}, "--smtp-from"),
		Entry("a sender that is no address", delivery.Mail{Host: "smtp.example.com", TLS: delivery.TLSStartTLS, From: "not an address"}, "--smtp-from"),
		Entry("an unknown TLS mode", delivery.Mail{Host: "smtp.example.com", TLS: "maybe", From: "a@example.com"}, "--smtp-tls"),
	)
})

func closedPort() int {
	l, err := (&net.ListenConfig{}).Listen(GinkgoT().Context(), "tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	Expect(l.Close()).To(Succeed())
	return port
}

// selfSignedCertificate writes a certificate for 127.0.0.1 that is its own CA.
func selfSignedCertificate() (certFile, keyFile string) {
	GinkgoHelper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	Expect(err).NotTo(HaveOccurred())
	template := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, IsCA: true, BasicConstraintsValid: true,
		KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	Expect(err).NotTo(HaveOccurred())
	keyDER, err := x509.MarshalECPrivateKey(key)
	Expect(err).NotTo(HaveOccurred())
	dir := GinkgoT().TempDir()
	certFile, keyFile = filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	Expect(os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)).To(Succeed())
	Expect(os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}), 0o600)).To(Succeed())
	return certFile, keyFile
}
