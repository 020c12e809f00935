package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/manager"
)

// issuanceResult is one step of issuance: invitations applied until all are Active, and
// what the manager then holds in memory.
type issuanceResult struct {
	Total, Added     int
	InCluster        int // every invitation the manager caches, the redemption step's too
	Elapsed          time.Duration
	Writes           float64
	RawEquivalent    time.Duration
	RSSBytes, Heap   float64
	SecretsPerInvite float64
}

// expiryResult is how late invitations turn Expired after their expiresAt.
type expiryResult struct {
	Count    int
	P50, P99 time.Duration
	Max      time.Duration
}

// managerProcess is the manager binary, with its metrics endpoint.
type managerProcess struct {
	cmd        *exec.Cmd
	metricsURL string
}

// startManagerProcess runs the manager binary on free ports. Later flags in extra win over
// the defaults here, as Go's flag package keeps the last value.
func startManagerProcess(ctx context.Context, cp *controlPlane, path string, extra ...string) (*managerProcess, error) {
	dir, err := os.MkdirTemp("", "rolecall-bench-")
	if err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kubeconfig, cp.kubeconfig, 0o600); err != nil {
		return nil, err
	}
	metrics, probes, redeemPort := freePort(), freePort(), freePort()
	hook := cp.env.WebhookInstallOptions
	args := append([]string{
		"--kubeconfig=" + kubeconfig, "--namespace=default", "--public-url=https://invite.example.test",
		fmt.Sprintf("--metrics-bind-address=127.0.0.1:%d", metrics),
		fmt.Sprintf("--health-probe-bind-address=127.0.0.1:%d", probes),
		fmt.Sprintf("--redeem-bind-address=127.0.0.1:%d", redeemPort),
		"--webhook-cert-management=external", "--webhook-host=" + hook.LocalServingHost,
		fmt.Sprintf("--webhook-port=%d", hook.LocalServingPort), "--webhook-cert-dir=" + hook.LocalServingCertDir,
	}, extra...)
	cmd := exec.CommandContext(ctx, path, args...)               //nolint:gosec // the manager binary named on the command line
	logFile, err := os.Create(filepath.Join(dir, "manager.log")) //nolint:gosec // a temporary folder of our own
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	m := &managerProcess{cmd: cmd, metricsURL: fmt.Sprintf("http://127.0.0.1:%d/metrics", metrics)}
	return m, waitHTTP(ctx, fmt.Sprintf("http://127.0.0.1:%d/readyz", probes))
}

func (m *managerProcess) stop() {
	_ = m.cmd.Process.Signal(os.Interrupt)
	_ = m.cmd.Wait()
}

// memory reads the manager's resident set and Go heap from its own metrics.
func (m *managerProcess) memory(ctx context.Context) (rss, heap float64, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.metricsURL, nil)
	if err != nil {
		return 0, 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _ = resp.Body.Close() }()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(raw), "\n") {
		fields := strings.Fields(line)
		if len(fields) != 2 {
			continue
		}
		v, _ := strconv.ParseFloat(fields[1], 64)
		switch fields[0] {
		case "process_resident_memory_bytes":
			rss = v
		case "go_memstats_heap_inuse_bytes":
			heap = v
		}
	}
	return rss, heap, nil
}

// phases watches every Invitation's phase, and when each first turned Expired.
type phases struct {
	mu      sync.Mutex
	active  map[string]bool
	expired map[string]time.Duration // observed Expired minus status.expiresAt
}

func watchPhases(ctx context.Context, cp *controlPlane) (*phases, error) {
	p := &phases{active: map[string]bool{}, expired: map[string]time.Duration{}}
	c, err := cache.New(cp.admin, cache.Options{Scheme: manager.NewScheme()})
	if err != nil {
		return nil, err
	}
	informer, err := c.GetInformer(ctx, &invitesv1alpha1.Invitation{})
	if err != nil {
		return nil, err
	}
	record := func(obj any) {
		if inv, ok := obj.(*invitesv1alpha1.Invitation); ok {
			p.observe(inv, time.Now())
		}
	}
	if _, err := informer.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: record, UpdateFunc: func(_, obj any) { record(obj) },
	}); err != nil {
		return nil, err
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		return nil, fmt.Errorf("the phase watch did not sync")
	}
	return p, nil
}

func (p *phases) observe(inv *invitesv1alpha1.Invitation, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := inv.Namespace + "/" + inv.Name
	p.active[key] = inv.Status.Phase == invitesv1alpha1.PhaseActive
	if _, seen := p.expired[key]; !seen && inv.Status.Phase == invitesv1alpha1.PhaseExpired && inv.Status.ExpiresAt != nil {
		p.expired[key] = at.Sub(inv.Status.ExpiresAt.Time)
	}
}

func (p *phases) countActive(namespace string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for key, active := range p.active {
		if active && strings.HasPrefix(key, namespace+"/") {
			n++
		}
	}
	return n
}

func (p *phases) expiredIn(namespace string) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	var lags []time.Duration
	for key, lag := range p.expired {
		if strings.HasPrefix(key, namespace+"/") {
			lags = append(lags, lag)
		}
	}
	slices.Sort(lags)
	return lags
}

func measureManager(ctx context.Context, cp *controlPlane, o options, raw rawResult) ([]issuanceResult, expiryResult, error) {
	p, err := watchPhases(ctx, cp)
	if err != nil {
		return nil, expiryResult{}, err
	}
	m, err := startManagerProcess(ctx, cp, o.managerPath, "--pprof-bind-address="+o.pprofAddr)
	if err != nil {
		return nil, expiryResult{}, err
	}
	defer m.stop()
	rawRate := raw.createRate(slices.Max(o.concurrency))
	var results []issuanceResult
	total := 0
	for _, target := range o.issuance {
		r, err := issue(ctx, cp, p, target-total, slices.Max(o.concurrency))
		if err != nil {
			return nil, expiryResult{}, err
		}
		total = target
		r.Total = total
		if r.InCluster, err = countInvitations(ctx, cp); err != nil {
			return nil, expiryResult{}, err
		}
		r.RawEquivalent = time.Duration(r.Writes / rawRate * float64(time.Second))
		time.Sleep(5 * time.Second) // let the caches and the heap settle
		if r.RSSBytes, r.Heap, err = m.memory(ctx); err != nil {
			return nil, expiryResult{}, err
		}
		results = append(results, r)
		fmt.Printf("        issued %6d (total %6d) in %v; %0.f writes; raw API server: %v; RSS %.0f MiB, heap %.0f MiB\n",
			r.Added, r.Total, r.Elapsed.Round(time.Millisecond), r.Writes, r.RawEquivalent.Round(time.Millisecond), r.RSSBytes/(1<<20), r.Heap/(1<<20))
	}
	expiry, err := measureExpiry(ctx, cp, p, o.expiring, slices.Max(o.concurrency))
	return results, expiry, err
}

// issue applies n invitations in a new namespace and waits until all are Active.
func issue(ctx context.Context, cp *controlPlane, p *phases, n, c int) (issuanceResult, error) {
	ns, err := createNamespace(ctx, cp, "issue")
	if err != nil {
		return issuanceResult{}, err
	}
	before, err := cp.writesSoFar(ctx)
	if err != nil {
		return issuanceResult{}, err
	}
	start := time.Now()
	if _, err := load(ctx, n, c, func(ctx context.Context, _, i int) error {
		return cp.client.Create(ctx, newInvitation(ns, fmt.Sprintf("inv-%d", i), 1))
	}); err != nil {
		return issuanceResult{}, err
	}
	for p.countActive(ns) < n {
		if time.Since(start) > time.Hour {
			return issuanceResult{}, fmt.Errorf("only %d of %d invitations became Active in an hour", p.countActive(ns), n)
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	after, err := cp.writesSoFar(ctx)
	return issuanceResult{Added: n, Elapsed: elapsed, Writes: after - before}, err
}

// measureExpiry issues n invitations that expire 30 seconds after issuance, and measures
// how late each is marked Expired.
func measureExpiry(ctx context.Context, cp *controlPlane, p *phases, n, c int) (expiryResult, error) {
	ns, err := createNamespace(ctx, cp, "expire")
	if err != nil {
		return expiryResult{}, err
	}
	if _, err := load(ctx, n, c, func(ctx context.Context, _, i int) error {
		inv := newInvitation(ns, fmt.Sprintf("inv-%d", i), 1)
		inv.Spec.ExpiresAfter = &metav1.Duration{Duration: 30 * time.Second}
		return cp.client.Create(ctx, inv)
	}); err != nil {
		return expiryResult{}, err
	}
	deadline := time.Now().Add(5 * time.Minute)
	for len(p.expiredIn(ns)) < n && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	lags := p.expiredIn(ns)
	if len(lags) < n {
		return expiryResult{}, fmt.Errorf("only %d of %d invitations expired", len(lags), n)
	}
	r := expiryResult{Count: n, P50: percentile(lags, 50), P99: percentile(lags, 99), Max: lags[len(lags)-1]}
	fmt.Printf("        expiry lag for %d invitations: p50 %v  p99 %v  max %v\n", n, r.P50, r.P99, r.Max)
	return r, nil
}

func freePort() int {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return 0
	}
	defer func() { _ = l.Close() }()
	return l.Addr().(*net.TCPAddr).Port
}

// countInvitations counts every Invitation in the cluster, reading only metadata.
func countInvitations(ctx context.Context, cp *controlPlane) (int, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(invitesv1alpha1.GroupVersion.WithKind("InvitationList"))
	err := cp.client.List(ctx, list)
	return len(list.Items), err
}
