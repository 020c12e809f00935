// Package testenv starts what the integration tests share: a real kube-apiserver and etcd
// (envtest) with rolecall's CRDs and webhook configurations installed, and the manager's
// admission webhooks serving them. As in production, the webhook server answers only the
// API server, which presents a client certificate (see PresentWebhookClientCert).
package testenv

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/rolecall/rolecall/internal/certs"
	"github.com/rolecall/rolecall/internal/manager"
)

// Env is a running control plane with rolecall's webhooks.
type Env struct {
	Environment *envtest.Environment
	// Config and Admin act as a cluster administrator (system:masters).
	Config *rest.Config
	Admin  client.Client
	// WebhookClient is the certificate the API server presents to the webhook server.
	WebhookClient *WebhookClient
	cancel        context.CancelFunc
	dir           string
}

// repoRoot finds the repository from this file's location, so any package can use it.
func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "..")
}

// StartWithWebhooks starts the control plane and a manager running only the webhooks.
func StartWithWebhooks(cfg manager.Config) (*Env, error) {
	root := repoRoot()
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join(root, "config", "webhook")}},
	}
	dir, err := os.MkdirTemp("", "rolecall-testenv-")
	if err != nil {
		return nil, err
	}
	e := &Env{Environment: env, dir: dir}
	if e.WebhookClient, err = PresentWebhookClientCert(env, dir); err != nil {
		return e, err
	}
	requireAPIServer, err := certs.RequireClientCertificate(e.WebhookClient.CAFile, []string{e.WebhookClient.Name})
	if err != nil {
		return e, err
	}
	if e.Config, err = env.Start(); err != nil {
		return e, err
	}
	restConfig := e.Config
	scheme := manager.NewScheme()
	if e.Admin, err = client.New(restConfig, client.Options{Scheme: scheme}); err != nil {
		return e, err
	}
	if err := InstallDiscoveryReader(context.Background(), e.Admin); err != nil {
		return e, err
	}
	hook := env.WebhookInstallOptions
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme, Cache: manager.CacheOptions(),
		Metrics: metricsserver.Options{BindAddress: "0"}, HealthProbeBindAddress: "0",
		WebhookServer: webhook.NewServer(webhook.Options{
			Host: hook.LocalServingHost, Port: hook.LocalServingPort, CertDir: hook.LocalServingCertDir,
			TLSOpts: []func(*tls.Config){requireAPIServer},
		}),
	})
	if err != nil {
		return e, err
	}
	var ctx context.Context
	ctx, e.cancel = context.WithCancel(context.Background())
	if err := manager.Setup(ctx, mgr, cfg, manager.Parts{Webhooks: true}); err != nil {
		return e, err
	}
	go func() { _ = mgr.Start(ctx) }()
	if !mgr.GetCache().WaitForCacheSync(ctx) {
		return e, fmt.Errorf("the manager's cache did not sync")
	}
	return e, waitForTLS(ctx, net.JoinHostPort(hook.LocalServingHost, fmt.Sprint(hook.LocalServingPort)), e.WebhookClient.Certificate)
}

// waitForTLS presents the API server's certificate: the server refuses anyone else.
func waitForTLS(ctx context.Context, addr string, cert tls.Certificate) error {
	deadline := time.Now().Add(30 * time.Second)
	dialer := &tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true, Certificates: []tls.Certificate{cert}}} //nolint:gosec // only checks that the test server listens
	for {
		conn, err := dialer.DialContext(ctx, "tcp", addr)
		if err == nil {
			return conn.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the webhook server did not start at %s: %w", addr, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// UserConfig is a rest.Config for a user the API server authenticates, with these groups.
func (e *Env) UserConfig(name string, groups ...string) (*rest.Config, error) {
	user, err := e.Environment.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return user.Config(), nil
}

// Stop stops the manager and the control plane.
func (e *Env) Stop() error {
	if e.cancel != nil {
		e.cancel()
	}
	if e.dir != "" {
		defer func() { _ = os.RemoveAll(e.dir) }()
	}
	return e.Environment.Stop()
}
