package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/rolecall/rolecall/internal/manager"
)

// controlPlane is etcd and kube-apiserver with rolecall's CRDs and webhook configurations,
// and an administrator's clients. The administrator is the inviter of every invitation.
type controlPlane struct {
	env       *envtest.Environment
	admin     *rest.Config
	client    client.Client
	clientset *kubernetes.Clientset
	// kubeconfig is the administrator's, for the manager process.
	kubeconfig []byte
}

func startControlPlane() (*controlPlane, error) {
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join("config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
		WebhookInstallOptions: envtest.WebhookInstallOptions{Paths: []string{filepath.Join("config", "webhook")}},
	}
	if _, err := env.Start(); err != nil {
		return nil, fmt.Errorf("starting the control plane: %w", err)
	}
	cp := &controlPlane{env: env}
	user, err := env.AddUser(envtest.User{Name: "bench-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return cp, err
	}
	if cp.kubeconfig, err = user.KubeConfig(); err != nil {
		return cp, err
	}
	cp.admin = rest.CopyConfig(user.Config())
	// The benchmark is the load; client-side throttling would only measure itself.
	cp.admin.QPS, cp.admin.Burst = -1, 0
	if cp.client, err = client.New(cp.admin, client.Options{Scheme: manager.NewScheme()}); err != nil {
		return cp, err
	}
	cp.clientset, err = kubernetes.NewForConfig(cp.admin)
	return cp, err
}

func (cp *controlPlane) stop() error { return cp.env.Stop() }

// webhookOptions run a manager's webhook server where the API server expects it.
func (cp *controlPlane) webhookOptions() ctrl.Options {
	hook := cp.env.WebhookInstallOptions
	return ctrl.Options{
		Scheme: manager.NewScheme(), Cache: manager.CacheOptions(),
		HealthProbeBindAddress: "0",
		// Each measurement starts fresh managers in this one process.
		Controller:    config.Controller{SkipNameValidation: ptr.To(true)},
		WebhookServer: newWebhookServer(hook.LocalServingHost, hook.LocalServingPort, hook.LocalServingCertDir),
	}
}

// writesSoFar is the API server's own count of write requests (POST, PUT, PATCH, DELETE)
// that it answered, from its metrics.
func (cp *controlPlane) writesSoFar(ctx context.Context) (float64, error) {
	raw, err := cp.clientset.RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		return 0, err
	}
	var total float64
	for _, line := range strings.Split(string(raw), "\n") {
		if !strings.HasPrefix(line, "apiserver_request_total{") {
			continue
		}
		if !strings.Contains(line, `verb="POST"`) && !strings.Contains(line, `verb="PUT"`) &&
			!strings.Contains(line, `verb="PATCH"`) && !strings.Contains(line, `verb="DELETE"`) {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			total += v
		}
	}
	return total, nil
}

// waitHTTP waits until a URL answers 200.
func waitHTTP(ctx context.Context, url string) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not become ready: %w", url, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
