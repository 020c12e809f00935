package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

type controlPlane struct {
	env        *envtest.Environment
	kubeconfig string
	client     client.Client
	// webhookClient is the certificate kube-apiserver presents to the webhook server.
	webhookClient *testenv.WebhookClient
}

// startControlPlane starts etcd and kube-apiserver (RBAC on, ports chosen free, ID tokens
// accepted as authConfig says), installs the CRDs and writes an admin kubeconfig.
func startControlPlane(kubeconfigPath, authConfig string) (*controlPlane, error) {
	// envtest also installs the webhook configurations, pointed at a loopback port with a
	// CA of its own; the manager serves there with the certificate envtest wrote.
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("config", "webhook")}},
	}
	env.ControlPlane.GetAPIServer().Configure().Set("authentication-config", authConfig)
	// As in production, the webhook server answers only the API server's client certificate.
	certDir, err := filepath.Abs(filepath.Join(devDir, "webhook-client"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(certDir, 0o700); err != nil {
		return nil, err
	}
	webhookClient, err := testenv.PresentWebhookClientCert(env, certDir)
	if err != nil {
		return nil, err
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	cp := &controlPlane{env: env, webhookClient: webhookClient}
	admin, err := env.AddUser(envtest.User{Name: "dev-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return cp, fmt.Errorf("creating the admin user: %w", err)
	}
	kubeconfig, err := admin.KubeConfig()
	if err != nil {
		return cp, err
	}
	abs, err := filepath.Abs(kubeconfigPath)
	if err != nil {
		return cp, err
	}
	if err := os.WriteFile(abs, kubeconfig, 0o600); err != nil {
		return cp, err
	}
	cp.kubeconfig = abs
	cp.client, err = client.New(admin.Config(), client.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return cp, err
	}
	// The manager keeps its sign-in key in its own namespace.
	return cp, cp.client.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: managerNamespace}})
}

// managerNamespace is the manager's own namespace, as in config/default.
const managerNamespace = "rolecall-system"

// webhookArgs tell the manager where envtest expects its webhook server.
func (cp *controlPlane) webhookArgs() []string {
	hook := cp.env.WebhookInstallOptions
	return []string{
		"--webhook-cert-management=external",
		"--webhook-host=" + hook.LocalServingHost,
		fmt.Sprintf("--webhook-port=%d", hook.LocalServingPort),
		"--webhook-cert-dir=" + hook.LocalServingCertDir,
		"--webhook-client-ca-file=" + cp.webhookClient.CAFile,
		"--webhook-client-names=" + cp.webhookClient.Name,
	}
}

func (cp *controlPlane) stop() error {
	return cp.env.Stop()
}

// kcmArgs runs only the controllers a developer notices missing: aggregated roles
// (view/edit/admin would be empty), garbage collection (owned Secrets would linger) and
// namespace deletion.
func kcmArgs(kubeconfig string) []string {
	return []string{
		"--kubeconfig=" + kubeconfig,
		"--controllers=clusterrole-aggregation-controller,garbage-collector-controller,namespace-controller,serviceaccount-controller",
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
	}
}
