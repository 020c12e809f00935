package e2e

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

var _ = Describe("The manager binary's webhook port", Ordered, func() {
	var (
		c     *cluster
		admin client.Client
	)

	BeforeAll(func(ctx SpecContext) {
		c = startCluster(ctx)
		admin = c.admin
		m := c.startManager(c.writeKubeconfig(""))
		Eventually(func(g Gomega) {
			code, _, err := get(ctx, m.probesURL+"/readyz")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
		}).Should(Succeed())
	})

	It("refuses a forged AdmissionReview from a client without the API server's certificate (--webhook-client-ca-file)", func(ctx SpecContext) {
		hook := c.env.WebhookInstallOptions
		url := fmt.Sprintf("https://%s:%d/validate-invites-rolecall-dev-v1alpha1-rolegrantpolicy", hook.LocalServingHost, hook.LocalServingPort)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, strings.NewReader(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"forged"}}`))
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Content-Type", "application/json")
		curl := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
			TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // the attacker does not care whom they talk to
		}}
		resp, err := curl.Do(req)
		if resp != nil {
			_ = resp.Body.Close()
		}
		Expect(err).To(MatchError(ContainSubstring("tls: certificate required")))
	})

	It("admits what comes through the API server, which presents its certificate", func(ctx SpecContext) {
		Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "fenced"}})).To(Succeed())
		inv := &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: "welcome", Namespace: "fenced"},
			Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}},
		}
		Expect(admin.Create(ctx, inv)).To(Succeed())
		Expect(inv.Spec.Inviter.Username).To(Equal("e2e-admin"))
	})
})
