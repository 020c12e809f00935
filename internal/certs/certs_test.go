package certs_test

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/rolecall/rolecall/internal/certs"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

var (
	// testEnv runs rolecall's webhooks behind a real API server that presents a client
	// certificate to them, as production clusters are configured to.
	testEnv   *testenv.Env
	k8sClient client.Client
)

func TestCerts(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Webhook Certificates Suite")
}

var _ = BeforeSuite(func() {
	var err error
	testEnv, err = testenv.StartWithWebhooks(manager.Config{AllowRBACDelegation: true, DefaultExpiresAfter: 72 * time.Hour})
	Expect(err).NotTo(HaveOccurred())
	k8sClient = testEnv.Admin
})

var _ = AfterSuite(func() {
	if testEnv != nil {
		Expect(testEnv.Stop()).To(Succeed())
	}
})

const serviceName = "rolecall-webhook-service.rolecall-system.svc"

func webhookConfigurations(ctx SpecContext) (string, string) {
	none := admissionregistrationv1.SideEffectClassNone
	clientConfig := admissionregistrationv1.WebhookClientConfig{
		Service: &admissionregistrationv1.ServiceReference{Namespace: "rolecall-system", Name: "rolecall-webhook-service"},
	}
	mutating := &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "rolecall-mutating-"},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name: "m.invites.rolecall.dev", ClientConfig: clientConfig, SideEffects: &none, AdmissionReviewVersions: []string{"v1"},
		}},
	}
	validating := &admissionregistrationv1.ValidatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "rolecall-validating-"},
		Webhooks: []admissionregistrationv1.ValidatingWebhook{
			{Name: "v1.invites.rolecall.dev", ClientConfig: clientConfig, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}},
			{Name: "v2.invites.rolecall.dev", ClientConfig: clientConfig, SideEffects: &none, AdmissionReviewVersions: []string{"v1"}},
		},
	}
	Expect(k8sClient.Create(ctx, mutating)).To(Succeed())
	Expect(k8sClient.Create(ctx, validating)).To(Succeed())
	return mutating.Name, validating.Name
}

func newManager(secret client.ObjectKey, clock *clocktesting.FakeClock, mutating, validating string) *certs.Manager {
	return &certs.Manager{
		Client: k8sClient, Secret: secret, DNSNames: []string{serviceName},
		CertDir: GinkgoT().TempDir(), MutatingWebhooks: []string{mutating}, ValidatingWebhooks: []string{validating},
		Validity: 365 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour, Clock: clock,
	}
}

// servedCertificate loads the files the webhook server would serve and checks them
// against the CA bundle the API server was given.
func expectTrusted(m *certs.Manager, bundle []byte) *x509.Certificate {
	pair, err := tls.LoadX509KeyPair(filepath.Join(m.CertDir, certs.CertKey), filepath.Join(m.CertDir, certs.KeyKey))
	Expect(err).NotTo(HaveOccurred())
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	Expect(err).NotTo(HaveOccurred())
	roots := x509.NewCertPool()
	Expect(roots.AppendCertsFromPEM(bundle)).To(BeTrue())
	_, err = leaf.Verify(x509.VerifyOptions{DNSName: serviceName, Roots: roots, CurrentTime: m.Clock.Now()})
	Expect(err).NotTo(HaveOccurred())
	return leaf
}

func caBundles(ctx SpecContext, mutating, validating string) [][]byte {
	m := &admissionregistrationv1.MutatingWebhookConfiguration{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: mutating}, m)).To(Succeed())
	v := &admissionregistrationv1.ValidatingWebhookConfiguration{}
	Expect(k8sClient.Get(ctx, client.ObjectKey{Name: validating}, v)).To(Succeed())
	return [][]byte{m.Webhooks[0].ClientConfig.CABundle, v.Webhooks[0].ClientConfig.CABundle, v.Webhooks[1].ClientConfig.CABundle}
}

var _ = Describe("Webhook certificates", func() {
	var (
		secret               client.ObjectKey
		clock                *clocktesting.FakeClock
		mutating, validating string
	)
	BeforeEach(func(ctx SpecContext) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "certs-"}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())
		secret = client.ObjectKey{Namespace: ns.Name, Name: "rolecall-webhook-tls"}
		clock = clocktesting.NewFakeClock(time.Now())
		mutating, validating = webhookConfigurations(ctx)
	})

	It("issues a certificate, writes it for the server and gives the API server its CA", func(ctx SpecContext) {
		m := newManager(secret, clock, mutating, validating)
		renewAt, err := m.Ensure(ctx)
		Expect(err).NotTo(HaveOccurred())

		stored := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, secret, stored)).To(Succeed())
		Expect(stored.Data).To(HaveKey(certs.CAKey))
		for _, bundle := range caBundles(ctx, mutating, validating) {
			Expect(bundle).To(Equal(stored.Data[certs.CAKey]))
		}
		leaf := expectTrusted(m, stored.Data[certs.CAKey])
		Expect(renewAt).To(Equal(leaf.NotAfter.Add(-m.RenewBefore)))
		onDisk, err := os.ReadFile(filepath.Join(m.CertDir, certs.CAKey))
		Expect(err).NotTo(HaveOccurred())
		Expect(onDisk).To(Equal(stored.Data[certs.CAKey]))
	})

	It("shares one certificate between replicas", func(ctx SpecContext) {
		first := newManager(secret, clock, mutating, validating)
		second := newManager(secret, clock, mutating, validating)
		_, err := first.Ensure(ctx)
		Expect(err).NotTo(HaveOccurred())
		_, err = second.Ensure(ctx)
		Expect(err).NotTo(HaveOccurred())
		a, err := os.ReadFile(filepath.Join(first.CertDir, certs.CertKey))
		Expect(err).NotTo(HaveOccurred())
		b, err := os.ReadFile(filepath.Join(second.CertDir, certs.CertKey))
		Expect(err).NotTo(HaveOccurred())
		Expect(a).To(Equal(b))
	})

	It("renews before expiry, keeping the old CA trusted during the change", func(ctx SpecContext) {
		m := newManager(secret, clock, mutating, validating)
		renewAt, err := m.Ensure(ctx)
		Expect(err).NotTo(HaveOccurred())
		oldCert, err := os.ReadFile(filepath.Join(m.CertDir, certs.CertKey))
		Expect(err).NotTo(HaveOccurred())

		clock.SetTime(renewAt.Add(time.Minute))
		nextRenewal, err := m.Ensure(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(nextRenewal).To(BeTemporally(">", renewAt.Add(300*24*time.Hour)))
		newCert, err := os.ReadFile(filepath.Join(m.CertDir, certs.CertKey))
		Expect(err).NotTo(HaveOccurred())
		Expect(newCert).NotTo(Equal(oldCert))

		bundle := caBundles(ctx, mutating, validating)[0]
		expectTrusted(m, bundle)
		roots := x509.NewCertPool()
		Expect(roots.AppendCertsFromPEM(bundle)).To(BeTrue())
		Expect(roots.Subjects()).To(HaveLen(2), "the bundle holds the new CA and the old one") //nolint:staticcheck // counting entries only
	})
})
