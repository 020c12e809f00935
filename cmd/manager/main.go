// Command manager runs rolecall's controllers and admission webhooks.
package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"sync/atomic"
	"time"

	apiserver "k8s.io/apiserver/pkg/apis/apiserver"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"

	"github.com/rolecall/rolecall/internal/certs"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/manager"
	"github.com/rolecall/rolecall/internal/seal"
)

type options struct {
	metricsAddr         string
	probeAddr           string
	leaderElect         bool
	namespace           string
	sealKeySecret       string
	publicURL           string
	defaultExpiresAfter time.Duration
	allowRBACDelegation bool
	invitationWorkers   int
	pprofAddr           string

	redeemAddr             string
	allowedRedirectOrigins []string
	trustedProxies         []netip.Prefix
	authenticationConfig   string
	tokenAudience          string
	oidc                   identity.LegacyOIDC
	oidcRequiredClaims     []string
	signIn                 signInOptions
	delivery               deliveryOptions

	webhookHost, webhookCertDir    string
	webhookPort                    int
	webhookCertManagement          string
	webhookService, webhookSecret  string
	mutatingConfig, validatingConf string
	webhookClientCAFile            string
	webhookClientNames             []string
}

func (o *options) bind(fs *flag.FlagSet) {
	fs.StringVar(&o.metricsAddr, "metrics-bind-address", ":8080", "Address of the Prometheus metrics endpoint; 0 disables it.")
	fs.StringVar(&o.probeAddr, "health-probe-bind-address", ":8081", "Address of the /healthz and /readyz probes.")
	fs.BoolVar(&o.leaderElect, "leader-elect", false, "Elect a leader so that only one replica runs the controllers.")
	fs.StringVar(&o.namespace, "namespace", envOr("POD_NAMESPACE", "rolecall-system"), "The manager's own namespace: leader election Lease and webhook certificate Secret.")
	fs.StringVar(&o.publicURL, "public-url", "http://localhost:8082", "External base URL of the redemption server; links are <public-url>/i/<token>.")
	fs.DurationVar(&o.defaultExpiresAfter, "default-expires-after", 72*time.Hour, "Lifetime of a token when the Invitation does not set spec.expiresAfter.")
	fs.BoolVar(&o.allowRBACDelegation, "allow-rbac-delegation", true, "Also allow an invitation when the inviter could create each binding themselves (create and bind rights).")
	fs.IntVar(&o.invitationWorkers, "invitation-workers", 4, "How many invitations are reconciled at once.")
	fs.StringVar(&o.pprofAddr, "pprof-bind-address", "0", "Address of the Go profiler (net/http/pprof) for diagnosing CPU and memory; 0 disables it.")
	fs.StringVar(&o.redeemAddr, "redeem-bind-address", ":8082", "Address of the redemption server.")
	fs.Func("allowed-redirect-origins", "Comma-separated origins (https://host[:port]) that redemptions may redirect to; others get the success page.", func(v string) error {
		for _, origin := range strings.Split(v, ",") {
			if origin = strings.TrimSpace(origin); origin != "" {
				o.allowedRedirectOrigins = append(o.allowedRedirectOrigins, origin)
			}
		}
		return nil
	})
	fs.Func("trusted-proxies", "Comma-separated networks (CIDR) of the proxies in front of the redemption server, such as the Ingress controller's pods: for their requests, rate limits count the client named in X-Forwarded-For.", func(v string) error {
		for _, cidr := range strings.Split(v, ",") {
			if cidr = strings.TrimSpace(cidr); cidr == "" {
				continue
			}
			prefix, err := netip.ParsePrefix(cidr)
			if err != nil {
				return fmt.Errorf("%q is not a network such as 10.0.0.0/8: %w", cidr, err)
			}
			o.trustedProxies = append(o.trustedProxies, prefix.Masked())
		}
		return nil
	})
	fs.StringVar(&o.tokenAudience, "token-audience", "", "Also accept service account tokens minted for this audience (kubectl create token SA --audience NAME), which the API server itself refuses; published for kubectl invite in kube-public/rolecall-info.")
	fs.StringVar(&o.authenticationConfig, "authentication-config", "", "kube-apiserver's AuthenticationConfiguration file: ID tokens are mapped to users exactly as the API server maps them.")
	fs.StringVar(&o.oidc.IssuerURL, "oidc-issuer-url", "", "As kube-apiserver's --oidc-issuer-url.")
	fs.StringVar(&o.oidc.ClientID, "oidc-client-id", "", "As kube-apiserver's --oidc-client-id.")
	fs.StringVar(&o.oidc.UsernameClaim, "oidc-username-claim", "sub", "As kube-apiserver's --oidc-username-claim.")
	fs.StringVar(&o.oidc.UsernamePrefix, "oidc-username-prefix", "", "As kube-apiserver's --oidc-username-prefix.")
	fs.StringVar(&o.oidc.GroupsClaim, "oidc-groups-claim", "", "As kube-apiserver's --oidc-groups-claim.")
	fs.StringVar(&o.oidc.GroupsPrefix, "oidc-groups-prefix", "", "As kube-apiserver's --oidc-groups-prefix.")
	fs.StringVar(&o.oidc.CAFile, "oidc-ca-file", "", "As kube-apiserver's --oidc-ca-file.")
	fs.Func("oidc-required-claim", "As kube-apiserver's --oidc-required-claim (key=value; repeatable).", func(v string) error {
		o.oidcRequiredClaims = append(o.oidcRequiredClaims, v)
		return nil
	})
	o.signIn.bind(fs)
	o.delivery.bind(fs)
	fs.StringVar(&o.webhookHost, "webhook-host", "", "Address the admission webhook server listens on (default: all).")
	fs.IntVar(&o.webhookPort, "webhook-port", 9443, "Port of the admission webhook server.")
	fs.StringVar(&o.webhookCertDir, "webhook-cert-dir", "/tmp/k8s-webhook-server/serving-certs", "Folder holding the webhook server's tls.crt and tls.key.")
	fs.StringVar(&o.webhookCertManagement, "webhook-cert-management", "self", `"self": the manager issues and renews its webhook certificate and patches the CA into its webhook configurations; "external": the files in --webhook-cert-dir come from elsewhere (cert-manager).`)
	fs.StringVar(&o.webhookService, "webhook-service", "rolecall-webhook-service", "Name of the Service in front of the webhook server (the certificate's DNS names derive from it).")
	fs.StringVar(&o.webhookSecret, "webhook-cert-secret", "rolecall-webhook-tls", "Secret in --namespace holding the self-managed webhook certificate.")
	fs.StringVar(&o.sealKeySecret, "seal-key-secret", "rolecall-seal-key", "Secret in --namespace holding the key that seals what rolecall records (token hashes, claims, bindings); created if missing, shared by all replicas.")
	fs.StringVar(&o.webhookClientCAFile, "webhook-client-ca-file", "", "CA (PEM) that signed the client certificate kube-apiserver presents to admission webhooks (its AdmissionConfiguration): the webhook server then refuses every connection without a certificate it signed. Empty: any client may connect (fence the port with config/networkpolicy).")
	fs.Func("webhook-client-names", "Comma-separated names, one of which the API server's client certificate must carry as its CommonName or a DNS name (with --webhook-client-ca-file; default: any certificate the CA signed).", func(v string) error {
		for _, name := range strings.Split(v, ",") {
			if name = strings.TrimSpace(name); name != "" {
				o.webhookClientNames = append(o.webhookClientNames, name)
			}
		}
		return nil
	})
	fs.StringVar(&o.mutatingConfig, "mutating-webhook-configuration", "rolecall-mutating-webhook-configuration", "MutatingWebhookConfiguration to patch the CA into.")
	fs.StringVar(&o.validatingConf, "validating-webhook-configuration", "rolecall-validating-webhook-configuration", "ValidatingWebhookConfiguration to patch the CA into.")
}

func (o *options) validate() error {
	u, err := url.Parse(o.publicURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("--public-url must be an absolute http or https URL, got %q", o.publicURL)
	}
	if o.defaultExpiresAfter <= 0 {
		return errors.New("--default-expires-after must be positive")
	}
	if o.authenticationConfig != "" && o.oidc.IssuerURL != "" {
		return errors.New("--authentication-config and --oidc-issuer-url cannot both be set, as for kube-apiserver")
	}
	for _, origin := range o.allowedRedirectOrigins {
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") {
			return fmt.Errorf("--allowed-redirect-origins: %q is not an origin such as https://console.example.com", origin)
		}
	}
	if o.webhookCertManagement != "self" && o.webhookCertManagement != "external" {
		return fmt.Errorf(`--webhook-cert-management must be "self" or "external", got %q`, o.webhookCertManagement)
	}
	if len(o.webhookClientNames) > 0 && o.webhookClientCAFile == "" {
		return errors.New("--webhook-client-names needs --webhook-client-ca-file: names are checked on certificates that CA signed")
	}
	return o.delivery.validate()
}

func envOr(key, fallback string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return fallback
}

func main() {
	var opts options
	opts.bind(flag.CommandLine)
	zapOpts := zap.Options{}
	zapOpts.BindFlags(flag.CommandLine)
	flag.Parse()
	zapOpts.Level = manager.CapVerbosity(zapOpts.Level)
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&zapOpts)))

	if err := run(ctrl.SetupSignalHandler(), opts); err != nil {
		ctrl.Log.WithName("setup").Error(err, "manager stopped")
		os.Exit(1)
	}
}

func run(ctx context.Context, opts options) error {
	if err := opts.validate(); err != nil {
		return err
	}
	webhookServer, err := newWebhookServer(opts)
	if err != nil {
		return err
	}
	restConfig := ctrl.GetConfigOrDie()
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        manager.NewScheme(),
		Cache:                         manager.CacheOptions(),
		Metrics:                       metricsserver.Options{BindAddress: opts.metricsAddr},
		HealthProbeBindAddress:        opts.probeAddr,
		PprofBindAddress:              opts.pprofAddr,
		LeaderElection:                opts.leaderElect,
		LeaderElectionID:              "rolecall.invites.rolecall.dev",
		LeaderElectionNamespace:       opts.namespace,
		LeaderElectionReleaseOnCancel: true,
		GracefulShutdownTimeout:       durationPtr(30 * time.Second),
		WebhookServer:                 webhookServer,
	})
	if err != nil {
		return fmt.Errorf("creating manager: %w", err)
	}
	if opts.webhookCertManagement == "self" {
		if err := startCertificates(ctx, mgr, opts); err != nil {
			return err
		}
	}
	authn, jwtConfig, err := authenticator(ctx, mgr, opts)
	if err != nil {
		return err
	}
	signIn, err := opts.signIn.build(ctx, mgr, jwtConfig, opts)
	if err != nil {
		return err
	}
	sealKey, err := loadSealKey(ctx, mgr, opts)
	if err != nil {
		return err
	}
	cfg := manager.Config{
		SealKey:   sealKey,
		PublicURL: opts.publicURL, DefaultExpiresAfter: opts.defaultExpiresAfter, AllowRBACDelegation: opts.allowRBACDelegation,
		Authenticator: authn, RedeemBindAddress: opts.redeemAddr, AllowedRedirectOrigins: opts.allowedRedirectOrigins,
		SignIn: signIn, InvitationWorkers: opts.invitationWorkers, TrustedProxies: opts.trustedProxies,
		TokenAudience: opts.tokenAudience,
	}
	opts.delivery.apply(&cfg)
	if err := manager.Setup(ctx, mgr, cfg, manager.Parts{Controllers: true, Webhooks: true, Redemption: true}); err != nil {
		return fmt.Errorf("registering controllers and webhooks: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("webhooks", startedOnce(mgr.GetWebhookServer().StartedChecker())); err != nil {
		return err
	}
	ctrl.Log.WithName("setup").Info("starting manager", "publicURL", opts.publicURL, "rbacDelegation", opts.allowRBACDelegation)
	return mgr.Start(ctx)
}

// loadSealKey reads (or, on a cluster's first start, creates) the key every replica seals
// with. It is read before the cache starts, so with a direct client.
func loadSealKey(ctx context.Context, mgr ctrl.Manager, opts options) ([]byte, error) {
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, err
	}
	return seal.LoadKey(ctx, direct, client.ObjectKey{Namespace: opts.namespace, Name: opts.sealKeySecret}, "seal-key")
}

// newWebhookServer serves admission webhooks, to the API server alone when
// --webhook-client-ca-file is set.
func newWebhookServer(opts options) (webhook.Server, error) {
	serverOpts := webhook.Options{Host: opts.webhookHost, Port: opts.webhookPort, CertDir: opts.webhookCertDir}
	if opts.webhookClientCAFile == "" {
		ctrl.Log.WithName("setup").Info("the webhook server answers any client: set --webhook-client-ca-file, or fence its port with a NetworkPolicy (config/networkpolicy)")
		return webhook.NewServer(serverOpts), nil
	}
	requireAPIServer, err := certs.RequireClientCertificate(opts.webhookClientCAFile, opts.webhookClientNames)
	if err != nil {
		return nil, err
	}
	serverOpts.TLSOpts = []func(*tls.Config){requireAPIServer}
	return webhook.NewServer(serverOpts), nil
}

// startedOnce remembers the first success of a check that a server has started. The
// webhook server's check opens a TLS connection without a client certificate, which a
// server that requires one refuses and logs: repeating it for every readiness probe would
// fill the log with refusals of the probe itself.
func startedOnce(check healthz.Checker) healthz.Checker {
	var started atomic.Bool
	return func(req *http.Request) error {
		if started.Load() {
			return nil
		}
		if err := check(req); err != nil {
			return err
		}
		started.Store(true)
		return nil
	}
}

// startCertificates writes a valid webhook certificate before the webhook server starts
// (it needs the files), then keeps renewing it in the background on every replica.
func startCertificates(ctx context.Context, mgr ctrl.Manager, opts options) error {
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return err
	}
	service := opts.webhookService + "." + opts.namespace + ".svc"
	m := &certs.Manager{
		Client: direct, Secret: client.ObjectKey{Namespace: opts.namespace, Name: opts.webhookSecret},
		DNSNames: []string{service, service + ".cluster.local"}, CertDir: opts.webhookCertDir,
		MutatingWebhooks: []string{opts.mutatingConfig}, ValidatingWebhooks: []string{opts.validatingConf},
		Validity: 365 * 24 * time.Hour, RenewBefore: 30 * 24 * time.Hour, Clock: clock.RealClock{},
	}
	if _, err := m.Ensure(ctx); err != nil {
		return fmt.Errorf("preparing the webhook certificate: %w", err)
	}
	return mgr.Add(m)
}

// authenticator accepts ID tokens the way the cluster's kube-apiserver is configured to, and
// any other credential the API server itself accepts (TokenReview).
func authenticator(ctx context.Context, mgr ctrl.Manager, opts options) (identity.Authenticator, *apiserver.AuthenticationConfiguration, error) {
	direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme()})
	if err != nil {
		return nil, nil, err
	}
	chain := identity.Chain{}
	var jwtConfig *apiserver.AuthenticationConfiguration
	switch {
	case opts.authenticationConfig != "":
		jwtConfig, err = identity.LoadAuthenticationConfiguration(opts.authenticationConfig)
	case opts.oidc.IssuerURL != "":
		opts.oidc.RequiredClaims = map[string]string{}
		for _, kv := range opts.oidcRequiredClaims {
			k, v, _ := strings.Cut(kv, "=")
			opts.oidc.RequiredClaims[k] = v
		}
		jwtConfig, err = opts.oidc.Configuration()
	}
	if err != nil {
		return nil, nil, err
	}
	if jwtConfig != nil {
		jwt, err := identity.NewJWT(ctx, jwtConfig)
		if err != nil {
			return nil, nil, err
		}
		chain = append(chain, jwt)
	}
	return append(chain, identity.TokenReviews(direct, opts.tokenAudience)...), jwtConfig, nil
}

func durationPtr(d time.Duration) *time.Duration { return &d }
