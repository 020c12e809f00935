// Command dev runs rolecall on a local control plane: a development OpenID provider, etcd,
// kube-apiserver (trusting that provider) and kube-controller-manager on loopback, the
// CRDs, mailpit (an SMTP server with a web UI), the manager and the samples. It prints
// where everything is, writes bin/dev/env for scripts, and stops it all on Ctrl-C.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/testing/testenv"
)

const devDir = "bin/dev"

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dev:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return errors.New("KUBEBUILDER_ASSETS is not set: run `make dev`, which builds the control plane first")
	}
	if err := os.MkdirAll(devDir, 0o750); err != nil {
		return err
	}
	envFile := filepath.Join(devDir, "env")
	_ = os.Remove(envFile)

	var stack cleanup
	defer stack.run()

	ports, err := choosePorts()
	if err != nil {
		return err
	}
	redeemURL := fmt.Sprintf("http://127.0.0.1:%d", ports.redeem)

	step("starting the development OpenID provider")
	idp, authConfig, err := startIdentityProvider(ctx, redeemURL)
	if err != nil {
		return err
	}
	stack.push("OpenID provider", idp.Close)

	step("starting mailpit, the SMTP server invitation mail goes to")
	mail, err := startMailpit(ctx)
	if err != nil {
		return err
	}
	stack.push("mailpit", func() error { mail.Stop(); return nil })

	step("starting etcd and kube-apiserver (trusting the OpenID provider)")
	cp, err := startControlPlane(filepath.Join(devDir, "kubeconfig"), authConfig)
	if err != nil {
		return err
	}
	stack.push("control plane", cp.stop)

	step("starting kube-controller-manager (fills the aggregated roles, collects garbage)")
	kcm, err := startProcess(ctx, "kube-controller-manager", filepath.Join(assets, "kube-controller-manager"), kcmArgs(cp.kubeconfig))
	if err != nil {
		return err
	}
	stack.push("kube-controller-manager", kcm.stop)

	step("starting the rolecall manager (log: " + filepath.Join(devDir, "manager.log") + ")")
	args := append(managerArgs(ports, redeemURL), cp.webhookArgs()...)
	args = append(args, smtpArgs(mail)...)
	args = append(args, "--authentication-config="+authConfig)
	mgr, err := startProcess(ctx, "manager", "bin/manager", args, "KUBECONFIG="+cp.kubeconfig)
	if err != nil {
		return err
	}
	stack.push("manager", mgr.stop)

	if err := waitForReady(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", ports.probes), mgr); err != nil {
		return err
	}
	// The manager publishes its redemption server's URL in kube-public/rolecall-info, and
	// kubectl invite redeem reads it as the signed-in user: let every user read it, as
	// config/rbac does on a real cluster.
	if err := testenv.InstallDiscoveryReader(ctx, cp.client); err != nil {
		return err
	}
	step("applying config/samples")
	if err := applySamples(ctx, cp.client, "config/samples"); err != nil {
		return err
	}
	link, err := waitForSample(ctx, cp.client, sampleInvitation, invitesv1alpha1.URLSecretKey)
	if err != nil {
		return err
	}
	code, err := waitForSample(ctx, cp.client, sampleCode, invitesv1alpha1.TokenSecretKey)
	if err != nil {
		return err
	}
	if err := writeEnvFile(envFile, cp.kubeconfig, redeemURL, idp.Issuer, mail.URL); err != nil {
		return err
	}
	stack.push("env file", func() error { return os.Remove(envFile) })

	printSummary(summary{kubeconfig: cp.kubeconfig, assets: assets, redeemURL: redeemURL, link: link, code: code, envFile: envFile, issuer: idp.Issuer, mailURL: mail.URL})
	select {
	case <-ctx.Done():
	case err := <-mgr.exited:
		return fmt.Errorf("the manager exited: %v (see %s)", err, filepath.Join(devDir, "manager.log"))
	case err := <-kcm.exited:
		return fmt.Errorf("kube-controller-manager exited: %v (see %s)", err, filepath.Join(devDir, "kube-controller-manager.log"))
	}
	fmt.Println()
	step("stopping")
	return nil
}

func step(msg string) {
	fmt.Printf("[dev] %s %s\n", time.Now().Format("15:04:05"), msg)
}

// cleanup stops what was started, last first.
type cleanup struct {
	names []string
	fns   []func() error
}

func (c *cleanup) push(name string, fn func() error) {
	c.names = append(c.names, name)
	c.fns = append(c.fns, fn)
}

func (c *cleanup) run() {
	for i := len(c.fns) - 1; i >= 0; i-- {
		if err := c.fns[i](); err != nil {
			fmt.Fprintf(os.Stderr, "[dev] stopping %s: %v\n", c.names[i], err)
		}
	}
}
