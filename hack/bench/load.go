package main

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

// stats summarise one measurement: how many operations, how fast, and how long each took.
type stats struct {
	Ops           int
	Concurrency   int
	Elapsed       time.Duration
	P50, P95, P99 time.Duration
}

func (s stats) rate() float64 { return float64(s.Ops) / s.Elapsed.Seconds() }

// load runs n operations on c workers and times each one. op gets the worker's number and
// the operation's; the first error stops the run.
func load(ctx context.Context, n, c int, op func(ctx context.Context, worker, i int) error) (stats, error) {
	latencies := make([]time.Duration, n)
	var next atomic.Int64
	var firstErr error
	var once sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				began := time.Now()
				if err := op(ctx, w, i); err != nil {
					once.Do(func() { firstErr = fmt.Errorf("operation %d: %w", i, err); cancel() })
					return
				}
				latencies[i] = time.Since(began)
			}
		})
	}
	wg.Wait()
	if firstErr != nil {
		return stats{}, firstErr
	}
	s := stats{Ops: n, Concurrency: c, Elapsed: time.Since(start)}
	slices.Sort(latencies)
	s.P50, s.P95, s.P99 = percentile(latencies, 50), percentile(latencies, 95), percentile(latencies, 99)
	return s, nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, (len(sorted)*p+99)/100-1)]
}

func parseInts(v string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", part)
		}
		out = append(out, n)
	}
	return out, nil
}

func newWebhookServer(host string, port int, certDir string) webhook.Server {
	return webhook.NewServer(webhook.Options{Host: host, Port: port, CertDir: certDir})
}
