package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	"github.com/onsi/gomega/gexec"
	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// freePort returns a port nothing listens on, for a process this suite starts. It is taken
// below Linux's ephemeral range (32768 and up): a port from that range, once released, may
// become the source port of one of the many connections a flood opens before the process
// binds it. No port is handed out twice.
func freePort() int {
	handedOutMu.Lock()
	defer handedOutMu.Unlock()
	for {
		port := 20000 + rand.IntN(12000) //nolint:gosec // not a secret, a spread
		if handedOut[port] {
			continue
		}
		l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		_ = l.Close()
		handedOut[port] = true
		return port
	}
}

var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

func get(ctx context.Context, url string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// renderConfig renders a folder of config/ with the control plane's kubectl.
func renderConfig(ctx context.Context, dir string) []*unstructured.Unstructured {
	kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
	rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join("..", "..", "config", dir)).Output() //nolint:gosec // the control plane's own kubectl
	Expect(err).NotTo(HaveOccurred())
	var objs []*unstructured.Unstructured
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(rendered), 4096)
	for {
		obj := &unstructured.Unstructured{}
		err := decoder.Decode(&obj.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		Expect(err).NotTo(HaveOccurred())
		objs = append(objs, obj)
	}
}

// decodeRendered finds the object of that kind and name among the rendered ones and
// decodes it into out.
func decodeRendered(objs []*unstructured.Unstructured, kind, name string, out any) {
	for _, obj := range objs {
		if obj.GetKind() == kind && obj.GetName() == name {
			Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(obj.Object, out)).To(Succeed())
			return
		}
	}
	Fail(fmt.Sprintf("no %s %s among the rendered objects", kind, name))
}

var _ = Describe("The manager binary", Ordered, func() {
	var (
		admin                 client.Client
		session               *gexec.Session
		metricsURL, probesURL string
		redeemURL, kubeconfig string
	)

	BeforeAll(func(ctx SpecContext) {
		c := startCluster(ctx)
		admin = c.admin
		kubeconfig = c.writeKubeconfig("")
		m := c.startManager(kubeconfig, "--leader-elect")
		session, redeemURL, metricsURL, probesURL = m.session, m.redeemURL, m.metricsURL, m.probesURL
	})

	It("becomes healthy and ready once its webhook server serves", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			code, _, err := get(ctx, probesURL+"/healthz")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			code, _, err = get(ctx, probesURL+"/readyz")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
		}).Should(Succeed())
	})

	It("serves the redemption API on its own port, with its own probes", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			code, _, err := get(ctx, redeemURL+"/healthz")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
		}).Should(Succeed())
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, redeemURL+"/api/v1/redemptions", strings.NewReader(`{"token":"x"}`))
		Expect(err).NotTo(HaveOccurred())
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		defer func() { _ = resp.Body.Close() }()
		Expect(resp.StatusCode).To(Equal(http.StatusUnauthorized))
		Expect(resp.Header.Get("Cache-Control")).To(Equal("no-store"))
	})

	It("wins leader election and holds the Lease in its namespace", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			lease := &coordinationv1.Lease{}
			g.Expect(admin.Get(ctx, client.ObjectKey{Namespace: "rolecall-system", Name: "rolecall.invites.rolecall.dev"}, lease)).To(Succeed())
			g.Expect(lease.Spec.HolderIdentity).NotTo(BeNil())
			g.Expect(*lease.Spec.HolderIdentity).NotTo(BeEmpty())
		}).Should(Succeed())
	})

	It("admits, stamps and issues an invitation", func(ctx SpecContext) {
		Expect(admin.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})).To(Succeed())
		inv := &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: "team-a"},
			Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "edit"}}},
		}
		Expect(admin.Create(ctx, inv)).To(Succeed())
		Expect(inv.Spec.Inviter.Username).To(Equal("e2e-admin"))
		Eventually(func(g Gomega) {
			g.Expect(admin.Get(ctx, client.ObjectKeyFromObject(inv), inv)).To(Succeed())
			g.Expect(inv.Status.Phase).To(Equal(invitesv1alpha1.PhaseActive))
		}).Should(Succeed())
		secret := &corev1.Secret{}
		Eventually(func() error {
			return admin.Get(ctx, client.ObjectKey{Namespace: "team-a", Name: "alice-invitation-token"}, secret)
		}).Should(Succeed())
		Expect(string(secret.Data["url"])).To(HavePrefix("https://invite.example.test/i/" + inv.Status.TokenID + "."))
	})

	It("serves Prometheus metrics about its controllers, invitations, redemptions and policy", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			code, body, err := get(ctx, metricsURL)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="invitation"`))
			g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="delivery"`))
			// The invitation the spec before made, counted from the cache at scrape time.
			g.Expect(body).To(ContainSubstring(`rolecall_invitations{phase="Active"} 1`))
			g.Expect(body).To(ContainSubstring(`rolecall_invitations{phase="Revoked"} 0`))
			// The malformed redemption the redemption server spec sent.
			g.Expect(body).To(ContainSubstring(`rolecall_redemptions_total{result="unauthenticated"} 1`))
			g.Expect(body).To(ContainSubstring(`rolecall_redemption_duration_seconds_bucket{result="unauthenticated",le="+Inf"} 1`))
		}).Should(Succeed())
	})

	It("deploys from config/default: kustomize renders it and the API server accepts it", func(ctx SpecContext) {
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", filepath.Join("..", "..", "config", "default")).Output() //nolint:gosec // the control plane's own kubectl
		Expect(err).NotTo(HaveOccurred())
		for _, want := range []string{"kind: Deployment", "name: rolecall-webhook-service", "name: rolecall-validating-webhook-configuration",
			"name: rolecall-mutating-webhook-configuration", "kind: CustomResourceDefinition", "name: rolecall-manager"} {
			Expect(string(rendered)).To(ContainSubstring(want))
		}
		manifests := filepath.Join(GinkgoT().TempDir(), "default.yaml")
		Expect(os.WriteFile(manifests, rendered, 0o600)).To(Succeed())
		out, err := exec.CommandContext(ctx, kubectl, "--kubeconfig="+kubeconfig, "apply", "--dry-run=server", "--server-side", "-f", manifests).CombinedOutput() //nolint:gosec // as above
		Expect(err).NotTo(HaveOccurred(), string(out))
		Expect(string(out)).To(ContainSubstring("deployment.apps/rolecall-manager serverside-applied (server dry run)"))
		for _, applied := range []string{"service/rolecall-redeem", "service/rolecall-metrics", "poddisruptionbudget.policy/rolecall-manager"} {
			Expect(string(out)).To(ContainSubstring(applied + " serverside-applied (server dry run)"))
		}
	})

	It("runs from config/default on two nodes if it can, with a disruption budget and probes per server", func(ctx SpecContext) {
		objs := renderConfig(ctx, "default")
		deployment := &appsv1.Deployment{}
		decodeRendered(objs, "Deployment", "rolecall-manager", deployment)
		Expect(deployment.Spec.Replicas).To(HaveValue(BeEquivalentTo(2)))
		anti := deployment.Spec.Template.Spec.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution
		Expect(anti).To(ContainElement(HaveField("PodAffinityTerm.TopologyKey", "kubernetes.io/hostname")))

		manager := deployment.Spec.Template.Spec.Containers[0]
		Expect(manager.Args).To(ContainElement("--leader-elect"))
		Expect(manager.Ports).To(ContainElement(corev1.ContainerPort{Name: "redeem", ContainerPort: 8082}))
		Expect(manager.ReadinessProbe.HTTPGet).To(HaveField("Path", "/readyz"))
		Expect(manager.ReadinessProbe.HTTPGet.Port.String()).To(Equal("redeem"), "ready while the redemption server answers on its own port")
		Expect(manager.StartupProbe.HTTPGet.Port.String()).To(Equal("probes"), "not ready before the webhook server serves")
		Expect(*manager.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
		Expect(manager.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
		Expect(manager.Resources.Requests).NotTo(BeEmpty())
		Expect(manager.Resources.Limits).To(HaveKey(corev1.ResourceMemory))

		pdb := &policyv1.PodDisruptionBudget{}
		decodeRendered(objs, "PodDisruptionBudget", "rolecall-manager", pdb)
		Expect(pdb.Spec.MinAvailable.IntValue()).To(Equal(1))
		Expect(pdb.Spec.Selector.MatchLabels).To(Equal(deployment.Spec.Selector.MatchLabels))

		redeem := &corev1.Service{}
		decodeRendered(objs, "Service", "rolecall-redeem", redeem)
		Expect(redeem.Spec.Selector).To(Equal(deployment.Spec.Selector.MatchLabels))
		Expect(redeem.Spec.Ports).To(ConsistOf(HaveField("Port", BeEquivalentTo(80))))
		Expect(redeem.Spec.Ports[0].TargetPort.String()).To(Equal("redeem"))
	})

	It("mounts delivery credentials and templates from config/default only if they exist", func(ctx SpecContext) {
		deployment := &appsv1.Deployment{}
		decodeRendered(renderConfig(ctx, "default"), "Deployment", "rolecall-manager", deployment)
		manager := deployment.Spec.Template.Spec.Containers[0]
		Expect(manager.Args).To(ContainElements("--smtp-credentials-dir=/etc/rolecall/smtp", "--mail-templates-dir=/etc/rolecall/mail-templates",
			"--delivery-webhook-secret-file=/etc/rolecall/hooks/delivery-webhook", "--idp-hook-secret-file=/etc/rolecall/hooks/idp-hook"))
		Expect(manager.VolumeMounts).To(ContainElements(
			corev1.VolumeMount{Name: "smtp", MountPath: "/etc/rolecall/smtp", ReadOnly: true},
			corev1.VolumeMount{Name: "mail-templates", MountPath: "/etc/rolecall/mail-templates", ReadOnly: true},
			corev1.VolumeMount{Name: "hooks", MountPath: "/etc/rolecall/hooks", ReadOnly: true}))
		volumes := map[string]corev1.Volume{}
		for _, v := range deployment.Spec.Template.Spec.Volumes {
			volumes[v.Name] = v
		}
		Expect(volumes["smtp"].Secret).To(HaveField("SecretName", "rolecall-smtp"))
		Expect(volumes["smtp"].Secret.Optional).To(HaveValue(BeTrue()))
		Expect(volumes["hooks"].Secret).To(HaveField("SecretName", "rolecall-hooks"))
		Expect(volumes["hooks"].Secret.Optional).To(HaveValue(BeTrue()))
		Expect(volumes["mail-templates"].ConfigMap).To(HaveField("Name", "rolecall-mail-templates"))
		Expect(volumes["mail-templates"].ConfigMap.Optional).To(HaveValue(BeTrue()))
	})

	It("leaves the ServiceMonitor out of config/default, and config/prometheus's selects the metrics Service", func(ctx SpecContext) {
		objs := renderConfig(ctx, "default")
		Expect(objs).NotTo(ContainElement(HaveField("Object", HaveKeyWithValue("kind", "ServiceMonitor"))))
		metrics := &corev1.Service{}
		decodeRendered(objs, "Service", "rolecall-metrics", metrics)
		Expect(metrics.Spec.Ports).To(ConsistOf(HaveField("Name", "metrics")))

		monitor := &unstructured.Unstructured{}
		decodeRendered(renderConfig(ctx, "prometheus"), "ServiceMonitor", "rolecall-manager", monitor)
		selector, _, _ := unstructured.NestedStringMap(monitor.Object, "spec", "selector", "matchLabels")
		Expect(selector).NotTo(BeEmpty())
		for key, value := range selector {
			Expect(metrics.Labels).To(HaveKeyWithValue(key, value), "the ServiceMonitor selects the metrics Service")
		}
		endpoints, _, _ := unstructured.NestedSlice(monitor.Object, "spec", "endpoints")
		Expect(endpoints).To(ConsistOf(HaveKeyWithValue("port", "metrics")))
	})

	It("renders the cert-manager variant", func(ctx SpecContext) {
		overlay := GinkgoT().TempDir()
		abs, err := filepath.Abs(filepath.Join("..", "..", "config"))
		Expect(err).NotTo(HaveOccurred())
		rel, err := filepath.Rel(overlay, abs)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(
			"resources: ["+rel+"/default]\ncomponents: ["+rel+"/certmanager]\n"), 0o600)).To(Succeed())
		kubectl := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "kubectl")
		rendered, err := exec.CommandContext(ctx, kubectl, "kustomize", "--load-restrictor=LoadRestrictionsNone", overlay).CombinedOutput() //nolint:gosec // as above
		Expect(err).NotTo(HaveOccurred(), string(rendered))
		Expect(string(rendered)).To(ContainSubstring("cert-manager.io/inject-ca-from: rolecall-system/rolecall-webhook-tls"))
		Expect(string(rendered)).To(ContainSubstring("--webhook-cert-management=external"))
		Expect(string(rendered)).To(ContainSubstring("--leader-elect"), "the component adds an argument, it does not replace them")
		Expect(string(rendered)).To(ContainSubstring("--smtp-credentials-dir="))
		Expect(string(rendered)).To(ContainSubstring("secretName: rolecall-webhook-tls"))
	})

	It("shuts down cleanly on SIGTERM and hands the Lease back", func(ctx SpecContext) {
		session.Signal(syscall.SIGTERM)
		Eventually(session).Should(gexec.Exit(0))
		lease := &coordinationv1.Lease{}
		Expect(admin.Get(ctx, client.ObjectKey{Namespace: "rolecall-system", Name: "rolecall.invites.rolecall.dev"}, lease)).To(Succeed())
		Expect(lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "").To(BeTrue(), "the Lease is released for the next leader")
	})
})
