// Command manager runs rolecall's controllers.
package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"time"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/rolecall/rolecall/internal/manager"
)

type options struct {
	metricsAddr         string
	probeAddr           string
	leaderElect         bool
	leaderElectionNS    string
	publicURL           string
	defaultExpiresAfter time.Duration
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica runs the controllers.")
	fs.StringVar(&o.leaderElectionNS, "leader-election-namespace", "", "Namespace of the leader election Lease (default: the pod's namespace).")
	fs.StringVar(&o.publicURL, "public-url", "http://localhost:8082", "External base URL of the redemption server; links are <public-url>/i/<token>.")
	fs.DurationVar(&o.defaultExpiresAfter, "default-expires-after", 72*time.Hour, "Lifetime of a token when the Invitation does not set spec.expiresAfter.")
}

func (o *options) validate() error {
	u, err := url.Parse(o.publicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--public-url must be an absolute http or https URL, got %q", o.publicURL)
	}
	if o.defaultExpiresAfter <= 0 {
		return errors.New("--default-expires-after must be positive")
	}
	return nil
}

func main() {
	var opts options
	opts.bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	zapOpts.Level = manager.CapVerbosity(zapOpts.Level)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))
	log := ctrl.Log.WithName("setup")

	if err := run(opts); err != nil {
		log.Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(opts options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(ctrl.GetConfigOrDie(), ctrl.Options{
		Scheme:                        manager.NewScheme(),
		Cache:                         manager.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: opts.metricsAddr},
		HealthProbeBindAddress:        opts.probeAddr,
		LeaderElection:                opts.leaderElect,
		LeaderElectionID:              "rolecall.invites.rolecall.dev",
		LeaderElectionNamespace:       opts.leaderElectionNS,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       durationPtr(30 * time.Second),
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	cfg := manager.Config{PublicURL: opts.publicURL, DefaultExpiresAfter: opts.defaultExpiresAfter}
	if err := manager.AddControllers(mgr, cfg); err != nil {
		return fmt.Errorf("registering controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager", "publicURL", opts.publicURL)
	return mgr.Start(ctrl.SetupSignalHandler())
}

func durationPtr(d time.Duration) *time.Duration { return &d }
