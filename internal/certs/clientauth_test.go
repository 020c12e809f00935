package certs_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	admissionv1 "k8s.io/api/admission/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/certs"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

// forgedReview is what the attacker sent with curl: an AdmissionReview asking the
// mutating webhook about an invitation, as though the API server asked.
func forgedReview() []byte {
	inv := invitesv1alpha1.Invitation{
		TypeMeta:   metav1.TypeMeta{APIVersion: invitesv1alpha1.GroupVersion.String(), Kind: "Invitation"},
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "admin"}}},
	}
	raw, err := json.Marshal(inv)
	Expect(err).NotTo(HaveOccurred())
	review := admissionv1.AdmissionReview{
		TypeMeta: metav1.TypeMeta{APIVersion: "admission.k8s.io/v1", Kind: "AdmissionReview"},
		Request: &admissionv1.AdmissionRequest{
			UID:       "forged",
			Kind:      metav1.GroupVersionKind{Group: invitesv1alpha1.GroupVersion.Group, Version: invitesv1alpha1.GroupVersion.Version, Kind: "Invitation"},
			Resource:  metav1.GroupVersionResource{Group: invitesv1alpha1.GroupVersion.Group, Version: invitesv1alpha1.GroupVersion.Version, Resource: "invitations"},
			Namespace: "default", Name: "probe", Operation: admissionv1.Create,
			UserInfo: authenticationv1.UserInfo{Username: "mallory"},
			Object:   runtime.RawExtension{Raw: raw},
		},
	}
	body, err := json.Marshal(review)
	Expect(err).NotTo(HaveOccurred())
	return body
}

// postReview sends the review to the manager's webhook server, presenting certificates (none
// for a client without a credential).
func postReview(ctx SpecContext, certificates ...tls.Certificate) (*http.Response, error) {
	hook := testEnv.Environment.WebhookInstallOptions
	url := "https://" + net.JoinHostPort(hook.LocalServingHost, strconv.Itoa(hook.LocalServingPort)) +
		"/mutate-invites-rolecall-dev-v1alpha1-invitation"
	roots := x509.NewCertPool()
	Expect(roots.AppendCertsFromPEM(hook.LocalServingCAData)).To(BeTrue())
	tlsConfig := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if len(certificates) > 0 {
		// Presented whatever CAs the server says it accepts, as an attacker would.
		tlsConfig.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &certificates[0], nil }
	}
	httpClient := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsConfig}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(forgedReview()))
	Expect(err).NotTo(HaveOccurred())
	req.Header.Set("Content-Type", "application/json")
	return httpClient.Do(req)
}

var _ = Describe("The admission webhook server", func() {
	Context("when a client other than the API server posts a forged AdmissionReview", func() {
		It("refuses a client without a certificate during the TLS handshake", func(ctx SpecContext) {
			resp, err := postReview(ctx)
			if resp != nil {
				_ = resp.Body.Close()
			}
			Expect(err).To(MatchError(ContainSubstring("tls: certificate required")))
		})

		It("refuses a certificate from another CA during the TLS handshake", func(ctx SpecContext) {
			other, err := testenv.NewClientCA("someone-elses-ca")
			Expect(err).NotTo(HaveOccurred())
			cert, _, _, err := other.Issue(testenv.WebhookClientName)
			Expect(err).NotTo(HaveOccurred())
			resp, err := postReview(ctx, cert)
			if resp != nil {
				_ = resp.Body.Close()
			}
			Expect(err).To(MatchError(ContainSubstring("tls: unknown certificate authority")))
		})

		It("answers the same review from the holder of the API server's certificate", func(ctx SpecContext) {
			resp, err := postReview(ctx, testEnv.WebhookClient.Certificate)
			Expect(err).NotTo(HaveOccurred())
			defer func() { _ = resp.Body.Close() }()
			Expect(resp.StatusCode).To(Equal(http.StatusOK), "the endpoint the refusals protect is a real one")
			var review admissionv1.AdmissionReview
			Expect(json.NewDecoder(resp.Body).Decode(&review)).To(Succeed())
			Expect(review.Response).NotTo(BeNil())
			Expect(review.Response.UID).To(BeEquivalentTo("forged"))
		})
	})

	It("still admits invitations created through the API server, which presents its certificate", func(ctx SpecContext) {
		ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "clientauth-"}}
		Expect(k8sClient.Create(ctx, ns)).To(Succeed())
		inv := &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: ns.Name},
			Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}},
		}
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		Expect(inv.Spec.Inviter).NotTo(BeNil(), "the mutating webhook ran and stamped the inviter")
	})
})

var _ = Describe("RequireClientCertificate", func() {
	var ca *testenv.ClientCA
	var caFile string
	BeforeEach(func() {
		var err error
		ca, err = testenv.NewClientCA("api-server-client-ca")
		Expect(err).NotTo(HaveOccurred())
		caFile = filepath.Join(GinkgoT().TempDir(), "ca.crt")
		Expect(os.WriteFile(caFile, ca.PEM, 0o600)).To(Succeed())
	})

	// get connects to a TLS server that requires what names says, with a certificate for cn
	// issued by issuer (none when issuer is nil).
	get := func(names []string, issuer *testenv.ClientCA, cn string) error {
		requireClient, err := certs.RequireClientCertificate(caFile, names)
		Expect(err).NotTo(HaveOccurred())
		server := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		server.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
		requireClient(server.TLS)
		server.StartTLS()
		defer server.Close()
		httpClient := server.Client()
		transport := httpClient.Transport.(*http.Transport)
		if issuer != nil {
			cert, _, _, err := issuer.Issue(cn)
			Expect(err).NotTo(HaveOccurred())
			transport.TLSClientConfig.Certificates = []tls.Certificate{cert}
		}
		resp, err := httpClient.Get(server.URL)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}

	It("accepts any certificate the CA signed when no names are given", func() {
		Expect(get(nil, ca, "anything")).To(Succeed())
	})

	It("accepts a certificate whose CommonName is allowed", func() {
		Expect(get([]string{"kube-apiserver", "apiserver-2"}, ca, "apiserver-2")).To(Succeed())
	})

	It("refuses a certificate the CA signed for a name that is not allowed", func() {
		Expect(get([]string{"kube-apiserver"}, ca, "someone-else")).To(MatchError(ContainSubstring("tls:")))
	})

	It("refuses a client without a certificate", func() {
		Expect(get(nil, nil, "")).To(MatchError(ContainSubstring("certificate required")))
	})

	It("refuses a CA file without a certificate, naming the flag", func() {
		empty := filepath.Join(GinkgoT().TempDir(), "empty.crt")
		Expect(os.WriteFile(empty, []byte("not a certificate"), 0o600)).To(Succeed())
		_, err := certs.RequireClientCertificate(empty, nil)
		Expect(err).To(MatchError(fmt.Sprintf("--webhook-client-ca-file: %s holds no PEM certificate", empty)))
	})
})
