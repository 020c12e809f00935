package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/redeem"
	"github.com/rolecall/rolecall/internal/seal"
)

// redemptionResult is one cell of the redemption table.
type redemptionResult struct {
	Scenario string
	Replicas int
	stats
	WritesPerRedemption float64
}

// benchUsers turns a bearer credential "user-N" into the user "bench:user-N". Identity is
// measured apart (an ID token is checked locally, other credentials with one TokenReview,
// which is a read); here every redemption is a new person.
type benchUsers struct{}

func (benchUsers) Authenticate(_ context.Context, credential string) (identity.User, error) {
	if !strings.HasPrefix(credential, "user-") {
		return identity.User{}, identity.ErrUnauthenticated
	}
	return identity.User{Username: "bench:" + credential, Groups: []string{"system:authenticated"}}, nil
}

var nextUser atomic.Int64

func measureRedemptions(ctx context.Context, cp *controlPlane, o options) ([]redemptionResult, error) {
	var results []redemptionResult
	for _, replicas := range []int{1, 2} {
		urls, stop, err := startReplicas(ctx, cp, replicas)
		if err != nil {
			return nil, err
		}
		for _, c := range o.concurrency {
			for _, scenario := range []string{"one invitation, many uses", "many single-use invitations"} {
				r, err := measureScenario(ctx, cp, urls, scenario, o.redemptions, c)
				if err != nil {
					stop()
					return nil, fmt.Errorf("%s, %d replicas, concurrency %d: %w", scenario, replicas, c, err)
				}
				r.Replicas = replicas
				results = append(results, r)
				fmt.Printf("        %-28s replicas=%d c=%-3d %7.0f/s  p50 %v  p95 %v  p99 %v  writes/redemption %.2f\n",
					scenario, replicas, c, r.rate(), r.P50, r.P95, r.P99, r.WritesPerRedemption)
			}
		}
		stop()
	}
	return results, nil
}

func measureScenario(ctx context.Context, cp *controlPlane, urls []string, scenario string, n, c int) (redemptionResult, error) {
	ns, err := createNamespace(ctx, cp, "redeem")
	if err != nil {
		return redemptionResult{}, err
	}
	var tokens []string
	if strings.HasPrefix(scenario, "one") {
		tokens, err = issueTokens(ctx, cp, urls, ns, 1, int32(min(n, 1_000_000))) //nolint:gosec // bounded to maxUses' range
	} else {
		tokens, err = issueTokens(ctx, cp, urls, ns, n, 1)
	}
	if err != nil {
		return redemptionResult{}, err
	}
	before, err := cp.writesSoFar(ctx)
	if err != nil {
		return redemptionResult{}, err
	}
	s, err := load(ctx, n, c, func(ctx context.Context, _, i int) error {
		user := fmt.Sprintf("user-%d", nextUser.Add(1))
		status, err := redeemOnce(ctx, urls[i%len(urls)], user, tokens[i%len(tokens)])
		if err == nil && status != http.StatusCreated {
			err = fmt.Errorf("answered %d", status)
		}
		return err
	})
	if err != nil {
		return redemptionResult{}, err
	}
	// The controller reflects each redemption in status shortly after; that is part of
	// what a redemption costs.
	time.Sleep(2 * time.Second)
	after, err := cp.writesSoFar(ctx)
	if err != nil {
		return redemptionResult{}, err
	}
	return redemptionResult{Scenario: scenario, stats: s, WritesPerRedemption: (after - before) / float64(n)}, nil
}

var httpClient = &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: time.Minute}

func redeemOnce(ctx context.Context, url, credential, tok string) (int, error) {
	body := fmt.Sprintf(`{"token":%q}`, tok)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/api/v1/redemptions", bytes.NewBufferString(body))
	if err != nil {
		return 0, err
	}
	if credential != "" {
		req.Header.Set("Authorization", "Bearer "+credential)
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return 0, err
	}
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// issueTokens creates invitations, waits for their tokens, and until every replica can
// find them.
func issueTokens(ctx context.Context, cp *controlPlane, urls []string, ns string, count int, maxUses int32) ([]string, error) {
	for i := range count {
		if err := cp.client.Create(ctx, newInvitation(ns, fmt.Sprintf("inv-%d", i), maxUses)); err != nil {
			return nil, err
		}
	}
	tokens, err := waitForTokens(ctx, cp, ns, count)
	if err != nil {
		return nil, err
	}
	for _, url := range urls {
		for _, tok := range tokens {
			if err := waitFound(ctx, url, tok); err != nil {
				return nil, err
			}
		}
	}
	return tokens, nil
}

// waitForTokens waits until count token Secrets exist in the namespace.
func waitForTokens(ctx context.Context, cp *controlPlane, ns string, count int) ([]string, error) {
	deadline := time.Now().Add(10 * time.Minute)
	for time.Now().Before(deadline) {
		var secrets corev1.SecretList
		if err := cp.client.List(ctx, &secrets, client.InNamespace(ns), client.MatchingLabels{invitesv1alpha1.TokenLabel: invitesv1alpha1.TokenLabelIssued}); err != nil {
			return nil, err
		}
		if len(secrets.Items) >= count {
			tokens := make([]string, 0, count)
			for _, s := range secrets.Items {
				tokens = append(tokens, string(s.Data[invitesv1alpha1.TokenSecretKey]))
			}
			return tokens, nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return nil, errors.New("tokens were not issued in 10 minutes")
}

// waitFound waits until a replica's cache knows the token: its landing page answers 200
// (a GET changes nothing, and a known token costs no failure budget).
func waitFound(ctx context.Context, url, tok string) error {
	for range 600 {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/i/"+tok, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return errors.New("a replica never found a token")
}

// startReplicas runs n managers in this process, each with its own cache and redemption
// server; the first also runs the controllers and the webhooks.
func startReplicas(ctx context.Context, cp *controlPlane, n int) ([]string, func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var urls []string
	var servers []*httptest.Server
	done := make(chan struct{}, n)
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
		cancel()
		for range len(servers) {
			<-done
		}
	}
	// Every replica seals with the same key, as replicas sharing the key Secret do.
	cfg := benchConfig()
	sealer, err := manager.NewSealer(cfg.SealKey)
	if err != nil {
		return nil, nil, err
	}
	for i := range n {
		opts := cp.webhookOptions()
		if i > 0 {
			opts.WebhookServer = nil
		}
		mgr, err := ctrl.NewManager(cp.admin, withoutMetrics(opts))
		if err != nil {
			stop()
			return nil, nil, err
		}
		if err := manager.Setup(ctx, mgr, cfg, manager.Parts{Controllers: i == 0, Webhooks: i == 0}); err != nil {
			stop()
			return nil, nil, err
		}
		server, err := redemptionServer(cp, mgr, sealer)
		if err != nil {
			stop()
			return nil, nil, err
		}
		go func() { _ = mgr.Start(ctx); done <- struct{}{} }()
		if !mgr.GetCache().WaitForCacheSync(ctx) {
			stop()
			return nil, nil, errors.New("cache did not sync")
		}
		hs := httptest.NewServer(server.Handler())
		servers = append(servers, hs)
		urls = append(urls, hs.URL)
	}
	hook := cp.env.WebhookInstallOptions
	if err := waitTLS(ctx, fmt.Sprintf("%s:%d", hook.LocalServingHost, hook.LocalServingPort)); err != nil {
		stop()
		return nil, nil, err
	}
	return urls, stop, nil
}

func redemptionServer(cp *controlPlane, mgr ctrl.Manager, sealer *seal.Sealer) (*redeem.Server, error) {
	live, err := client.New(cp.admin, client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, err
	}
	cfg := benchConfig()
	return &redeem.Server{
		Reader: mgr.GetClient(), Live: live, Sealer: sealer, Authenticator: benchUsers{},
		Authorizer: manager.NewAuthorizer(mgr, cfg), Clock: clock.RealClock{},
		Recorder: mgr.GetEventRecorder("rolecall-redeem"), Log: ctrl.Log.WithName("redeem"),
		// Every benchmark client shares one address: the limits are not what is measured.
		Limits: redeem.Limits{FailuresPerClient: 1e9, ClientBurst: 1 << 30, LockAfter: 1 << 30, LockWindow: time.Minute, LockFor: time.Second},
	}, nil
}

// benchKey is the sealing key every replica of a run shares.
var benchKey = func() []byte {
	key := make([]byte, seal.KeySize)
	if _, err := rand.Read(key); err != nil {
		panic(err)
	}
	return key
}()

func benchConfig() manager.Config {
	return manager.Config{SealKey: benchKey, PublicURL: "https://invite.example.test", DefaultExpiresAfter: 72 * time.Hour, AllowRBACDelegation: true, InvitationWorkers: 4}
}

func withoutMetrics(o ctrl.Options) ctrl.Options {
	o.Metrics = metricsserver.Options{BindAddress: "0"}
	return o
}

// waitTLS waits until a TLS server accepts connections.
func waitTLS(ctx context.Context, addr string) error {
	for range 300 {
		conn, err := (&tls.Dialer{Config: &tls.Config{InsecureSkipVerify: true}}).DialContext(ctx, "tcp", addr) //nolint:gosec // only probes that the port serves
		if err == nil {
			return conn.Close()
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("%s never served TLS", addr)
}
