// Package manager wires rolecall's controllers into a controller-runtime manager. The
// command and the tests share it, so the tests run the manager users run.
package manager

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/selection"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/controllers"
	"github.com/rolecall/rolecall/internal/delivery"
	"github.com/rolecall/rolecall/internal/identity"
	"github.com/rolecall/rolecall/internal/metrics"
	"github.com/rolecall/rolecall/internal/policy"
	"github.com/rolecall/rolecall/internal/redeem"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/webhook"
)

// Config is what the controllers need from the command line.
type Config struct {
	// SealKey is the key every replica seals with (seal.KeySize bytes, from seal.LoadKey).
	// Tests that run one process may leave it empty: a random key is made.
	SealKey []byte
	// PublicURL is the redemption server's external base URL.
	PublicURL string
	// DefaultExpiresAfter applies to invitations that do not set spec.expiresAfter.
	DefaultExpiresAfter time.Duration
	// Clock is the controllers' time source; tests pass a fake one.
	Clock clock.PassiveClock
	// AllowRBACDelegation lets inviters grant what they could bind themselves.
	AllowRBACDelegation bool
	// Authenticator checks redeemers' credentials.
	Authenticator identity.Authenticator
	// RedeemBindAddress is where the redemption server listens.
	RedeemBindAddress string
	// RedeemListener, when set, is used instead of RedeemBindAddress.
	RedeemListener net.Listener
	// AllowedRedirectOrigins are where redemptions may send people afterwards.
	AllowedRedirectOrigins []string
	// TrustedProxies are the proxies whose X-Forwarded-For names the client.
	TrustedProxies []netip.Prefix
	// InvitationWorkers is how many invitations the controller reconciles at once.
	InvitationWorkers int
	// SignIn, when set, lets people redeem from the browser.
	SignIn *redeem.SignIn
	// Mail and Webhook deliver links, when configured (nil otherwise).
	Mail, Webhook delivery.Sender
	// DeliveryBackoff is the wait after a failed delivery; it doubles with each failure.
	DeliveryBackoff time.Duration
	// DeliveryLimits bound deliveries per invitation and per recipient (zero: the defaults).
	DeliveryLimits delivery.Limits
	// IDPHook, when set, adds people to identity provider groups for grants with idpGroup.
	IDPHook *delivery.IDPHook
	// TokenAudience, when set, is the audience the redemption server accepts audience-bound
	// service account tokens for; the discovery ConfigMap tells clients about it.
	TokenAudience string
}

// NewScheme knows the built-in kinds and rolecall's.
func NewScheme() *runtime.Scheme {
	scheme := runtime.NewScheme()
	utilruntimeMust(clientgoscheme.AddToScheme(scheme))
	utilruntimeMust(invitesv1alpha1.AddToScheme(scheme))
	return scheme
}

func utilruntimeMust(err error) {
	if err != nil {
		panic(err)
	}
}

// TokenSecretSelector selects the only Secrets the manager caches: the token Secrets it
// writes and the Custom token Secrets users label for it. Caching every Secret in the
// cluster would cost memory and hold credentials rolecall has no business seeing.
func TokenSecretSelector() labels.Selector {
	req, err := labels.NewRequirement(invitesv1alpha1.TokenLabel, selection.In,
		[]string{invitesv1alpha1.TokenLabelIssued, invitesv1alpha1.TokenLabelCustom})
	utilruntimeMust(err)
	return labels.NewSelector().Add(*req)
}

// CacheOptions restricts the Secret informer to TokenSecretSelector, and the binding
// informers to the bindings rolecall made.
func CacheOptions() cache.Options {
	managed := labels.SelectorFromSet(labels.Set{invitesv1alpha1.ManagedByLabel: invitesv1alpha1.ManagedByValue})
	return cache.Options{
		// Nothing here reads managedFields, and they are often the larger part of an
		// object: dropping them roughly halves what the cache holds per invitation.
		DefaultTransform: cache.TransformStripManagedFields(),
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Secret{}:             {Label: TokenSecretSelector()},
			&rbacv1.RoleBinding{}:        {Label: managed},
			&rbacv1.ClusterRoleBinding{}: {Label: managed},
		},
	}
}

// NewAuthorizer builds the policy authorizer admission and redemption share. It reads
// through the manager's cache and needs the inviter index AddIndexes registers.
func NewAuthorizer(mgr ctrl.Manager, cfg Config) *policy.Authorizer {
	return &policy.Authorizer{
		Reader:              mgr.GetClient(),
		Writer:              mgr.GetClient(),
		AllowRBACDelegation: cfg.AllowRBACDelegation,
		DefaultExpiresAfter: cfg.DefaultExpiresAfter,
	}
}

// AddIndexes registers the cache indexes the authorizer, the redemption server and the
// controller rely on.
func AddIndexes(ctx context.Context, mgr ctrl.Manager) error {
	indexer := mgr.GetFieldIndexer()
	if err := indexer.IndexField(ctx, &invitesv1alpha1.Invitation{}, policy.InviterIndex, policy.InviterIndexValue); err != nil {
		return err
	}
	return indexer.IndexField(ctx, &invitesv1alpha1.Invitation{}, seal.TokenHashIndex, seal.TokenHashIndexValue)
}

// NewSealer returns the sealer for the configured key, or for a fresh random key when none
// is configured (one process alone: nobody else needs to verify its seals).
func NewSealer(key []byte) (*seal.Sealer, error) {
	if len(key) == 0 {
		key = make([]byte, seal.KeySize)
		if _, err := rand.Read(key); err != nil {
			return nil, err
		}
	}
	return seal.New(key)
}

// Parts says which halves of rolecall a manager runs: the production manager runs both,
// tests may run one.
type Parts struct {
	// Controllers run on the elected leader only.
	Controllers bool
	// Webhooks run on every replica.
	Webhooks bool
	// Redemption runs the redemption server, on every replica.
	Redemption bool
}

// Setup registers the cache indexes and the requested parts, which share one authorizer.
func Setup(ctx context.Context, mgr ctrl.Manager, cfg Config, parts Parts) error {
	if err := AddIndexes(ctx, mgr); err != nil {
		return err
	}
	authorizer := NewAuthorizer(mgr, cfg)
	sealer, err := NewSealer(cfg.SealKey)
	if err != nil {
		return err
	}
	if err := metrics.RegisterInvitations(mgr.GetCache()); err != nil && !isAlreadyRegistered(err) {
		return err
	}
	live, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
	if err != nil {
		return err
	}
	if parts.Redemption {
		if err := addRedemption(mgr, cfg, authorizer, sealer, live); err != nil {
			return err
		}
		if err := addDiscovery(mgr, cfg, live); err != nil {
			return err
		}
	}
	if parts.Webhooks {
		self, err := whoAmI(ctx, live)
		if err != nil {
			return err
		}
		if err := webhook.Setup(mgr, authorizer, self); err != nil {
			return err
		}
	}
	if parts.Controllers {
		return addControllers(mgr, cfg, authorizer, sealer, live)
	}
	return nil
}

// whoAmI asks the API server which user the manager authenticates as.
func whoAmI(ctx context.Context, c client.Client) (string, error) {
	review := &authenticationv1.SelfSubjectReview{}
	if err := c.Create(ctx, review); err != nil {
		return "", fmt.Errorf("asking the API server who the manager is: %w", err)
	}
	return review.Status.UserInfo.Username, nil
}

// isAlreadyRegistered: a second manager in the same process (tests run two replicas) finds
// the gauge registered by the first.
func isAlreadyRegistered(err error) bool {
	var already prometheus.AlreadyRegisteredError
	return errors.As(err, &already)
}

// addRedemption adds the redemption server.
func addRedemption(mgr ctrl.Manager, cfg Config, authorizer *policy.Authorizer, sealer *seal.Sealer, live client.Client) error {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	server := &redeem.Server{
		Reader: mgr.GetClient(), Live: live, Sealer: sealer,
		Authenticator: cfg.Authenticator, Authorizer: authorizer, Clock: cfg.Clock,
		Recorder: mgr.GetEventRecorder("rolecall-redeem"), Log: mgr.GetLogger().WithName("redeem"),
		AllowedRedirectOrigins: cfg.AllowedRedirectOrigins, SignIn: cfg.SignIn, TrustedProxies: cfg.TrustedProxies,
	}
	return mgr.Add(&redeem.Runnable{Server: server, Addr: cfg.RedeemBindAddress, Listener: cfg.RedeemListener})
}

func addControllers(mgr ctrl.Manager, cfg Config, authorizer *policy.Authorizer, sealer *seal.Sealer, live client.Client) error {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	invitations := &controllers.InvitationReconciler{
		Client:              mgr.GetClient(),
		APIReader:           mgr.GetAPIReader(),
		Live:                live,
		Scheme:              mgr.GetScheme(),
		Recorder:            mgr.GetEventRecorder("rolecall"),
		Clock:               cfg.Clock,
		Authorizer:          authorizer,
		Sealer:              sealer,
		PublicURL:           cfg.PublicURL,
		DefaultExpiresAfter: cfg.DefaultExpiresAfter,
		Workers:             cfg.InvitationWorkers,
	}
	if err := invitations.SetupWithManager(mgr); err != nil {
		return err
	}
	deliveries := &controllers.DeliveryReconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("rolecall"),
		Clock: cfg.Clock, Mail: cfg.Mail, Webhook: cfg.Webhook, Backoff: cfg.DeliveryBackoff,
		Sealer: sealer, PublicURL: cfg.PublicURL, Limits: cfg.DeliveryLimits,
	}
	if err := deliveries.SetupWithManager(mgr); err != nil {
		return err
	}
	policies := &controllers.RoleGrantPolicyReconciler{Client: mgr.GetClient()}
	if err := policies.SetupWithManager(mgr); err != nil {
		return err
	}
	for kind, obj := range map[string]client.Object{"RoleBinding": &rbacv1.RoleBinding{}, "ClusterRoleBinding": &rbacv1.ClusterRoleBinding{}} {
		expiry := &controllers.GrantExpiryReconciler{
			Client: mgr.GetClient(), Recorder: mgr.GetEventRecorder("rolecall"), Clock: cfg.Clock, Sealer: sealer, Object: obj, Kind: kind,
		}
		if err := expiry.SetupWithManager(mgr); err != nil {
			return err
		}
		groups := &controllers.IDPGroupReconciler{
			Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Recorder: mgr.GetEventRecorder("rolecall"),
			Clock: cfg.Clock, Hook: cfg.IDPHook, Sealer: sealer, Object: obj.DeepCopyObject().(client.Object), Kind: kind,
		}
		if err := groups.SetupWithManager(mgr); err != nil {
			return err
		}
	}
	return nil
}
