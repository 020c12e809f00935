package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

type process struct {
	cmd    *exec.Cmd
	exited chan error
}

// startProcess runs a command with its output in bin/dev/<name>.log.
func startProcess(ctx context.Context, name, path string, args []string, env ...string) (*process, error) {
	logFile, err := os.Create(filepath.Join(devDir, name+".log")) //nolint:gosec // a fixed folder and a name chosen by this program
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, path, args...) //nolint:gosec // the development launcher runs the binaries it just built
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = append(os.Environ(), env...)
	// Stopped by us with SIGTERM for a graceful shutdown, not killed with the context.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 20 * time.Second
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{cmd: cmd, exited: make(chan error, 1)}
	go func() {
		p.exited <- cmd.Wait()
		_ = logFile.Close()
	}()
	return p, nil
}

// stop asks the process to shut down and waits for it.
func (p *process) stop() error {
	if p.cmd.ProcessState != nil {
		return nil
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	select {
	case err := <-p.exited:
		return stoppedBySignal(err)
	case <-time.After(20 * time.Second):
		return p.cmd.Process.Kill()
	}
}

// stoppedBySignal treats the exit our own SIGTERM causes as a clean stop, whether it came
// from stop or from Ctrl-C ending the context (Wait then reports the context's error).
func stoppedBySignal(err error) error {
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) || errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

type devPorts struct {
	redeem, metrics, probes int
}

// choosePorts picks free loopback ports unless ROLECALL_DEV_REDEEM_PORT fixes the
// redemption server's (so that links stay the same across restarts).
func choosePorts() (devPorts, error) {
	var ports devPorts
	var err error
	if fixed := os.Getenv("ROLECALL_DEV_REDEEM_PORT"); fixed != "" {
		if ports.redeem, err = strconv.Atoi(fixed); err != nil {
			return ports, fmt.Errorf("ROLECALL_DEV_REDEEM_PORT: %w", err)
		}
	} else if ports.redeem, err = freePort(); err != nil {
		return ports, err
	}
	if ports.metrics, err = freePort(); err != nil {
		return ports, err
	}
	ports.probes, err = freePort()
	return ports, err
}

func freePort() (int, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func managerArgs(ports devPorts, redeemURL string) []string {
	return []string{
		"--public-url=" + redeemURL,
		fmt.Sprintf("--redeem-bind-address=127.0.0.1:%d", ports.redeem),
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", ports.metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", ports.probes),
		"--zap-devel",
	}
}

// waitForReady polls a readiness endpoint until it answers 200, the process exits, or a
// minute passes.
func waitForReady(ctx context.Context, url string, p *process) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-p.exited:
			return fmt.Errorf("the manager exited before it was ready: %v (see %s)", err, filepath.Join(devDir, "manager.log"))
		case <-ctx.Done():
			return fmt.Errorf("the manager did not become ready at %s (see %s)", url, filepath.Join(devDir, "manager.log"))
		case <-time.After(200 * time.Millisecond):
		}
	}
}
