// Command bench measures rolecall against the ceiling of the API server it runs on, in the
// same run: raw write rates first, then issuance, memory, expiry lag and redemptions, each
// reported as a ratio to that baseline. It writes docs/benchmarks.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"go.uber.org/zap/zapcore"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
)

type options struct {
	out          string
	writes       int
	issuance     []int
	expiring     int
	redemptions  int
	concurrency  []int
	managerPath  string
	skipIssuance bool
	skipRedeem   bool
	failover     bool
	pprofAddr    string
}

func main() {
	var o options
	flag.StringVar(&o.out, "out", "docs/benchmarks.md", "Where to write the report.")
	flag.IntVar(&o.writes, "writes", 2000, "Writes per raw API server measurement.")
	flag.Func("issuance", "Comma-separated invitation counts at which issuance time and memory are measured (cumulative).", func(v string) error {
		var err error
		o.issuance, err = parseInts(v)
		return err
	})
	flag.IntVar(&o.expiring, "expiring", 1000, "Invitations expiring together, for the expiry lag.")
	flag.IntVar(&o.redemptions, "redemptions", 500, "Redemptions per redemption measurement.")
	flag.Func("concurrency", "Comma-separated client concurrencies.", func(v string) error {
		var err error
		o.concurrency, err = parseInts(v)
		return err
	})
	flag.StringVar(&o.managerPath, "manager", "bin/manager", "The manager binary, run as a process for issuance, memory and expiry.")
	flag.BoolVar(&o.skipIssuance, "skip-issuance", false, "Skip issuance, memory and expiry.")
	flag.BoolVar(&o.skipRedeem, "skip-redemptions", false, "Skip the redemption measurements.")
	flag.BoolVar(&o.failover, "failover", true, "Measure leader failover between two manager processes (about two minutes).")
	flag.StringVar(&o.pprofAddr, "manager-pprof", "0", "Where the manager process serves net/http/pprof, for profiling a run.")
	flag.Parse()
	if o.issuance == nil {
		// 50,000 takes another quarter of an hour here: -issuance 1000,10000,50000.
		o.issuance = []int{1000, 10000}
	}
	if o.concurrency == nil {
		o.concurrency = []int{1, 8, 32}
	}
	// Errors only: the managers in this process would otherwise log every reconcile.
	ctrl.SetLogger(zap.New(zap.Level(zapcore.ErrorLevel)))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	r := &report{Started: time.Now(), Options: o}
	cp, err := startControlPlane()
	if err != nil {
		return err
	}
	defer func() { _ = cp.stop() }()

	step("baseline: raw API server writes")
	if r.Raw, err = measureRaw(ctx, cp, o.writes, o.concurrency); err != nil {
		return err
	}
	// Failover first of all: a new leader starts by reconciling every invitation there is.
	if o.failover {
		step("leader failover, with two manager binaries")
		if r.Failover, err = measureFailover(ctx, cp, o); err != nil {
			return err
		}
	}
	// Redemptions next, on a quiet cluster: managers started later would spend their
	// first minutes reconciling every invitation the issuance step made.
	if !o.skipRedeem {
		step("redemptions, with 1 and 2 replicas in this process")
		if r.Redemption, err = measureRedemptions(ctx, cp, o); err != nil {
			return err
		}
	}
	if !o.skipIssuance {
		step("issuance, memory and expiry, with the manager binary")
		if r.Issuance, r.Expiry, err = measureManager(ctx, cp, o, r.Raw); err != nil {
			return err
		}
	}
	r.Finished = time.Now()
	return r.write(o.out)
}

func step(msg string) {
	fmt.Printf("[bench] %s %s\n", time.Now().Format("15:04:05"), msg)
}
