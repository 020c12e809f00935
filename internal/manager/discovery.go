package manager

import (
	"context"
	"maps"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Creating cannot be limited to one name (the name is not known to RBAC before the object
// exists); reading and updating can.
// +kubebuilder:rbac:groups="",namespace=kube-public,resources=configmaps,verbs=create
// +kubebuilder:rbac:groups="",namespace=kube-public,resources=configmaps,resourceNames=rolecall-info,verbs=get;update

// discoveryPublisher writes the discovery ConfigMap (kube-public/rolecall-info): the
// redemption server's public URL, read by `kubectl invite redeem` through the user's own
// kubeconfig. The cluster is the one place the plugin already trusts with the user's
// credential, so a link's host never decides where that credential goes.
type discoveryPublisher struct {
	// client reads and writes past the cache: caching ConfigMaps would mean watching all
	// of them in the cluster.
	client client.Client
	data   map[string]string
	log    logr.Logger
}

// addDiscovery publishes where this manager's redemption server is.
func addDiscovery(mgr ctrl.Manager, cfg Config, live client.Client) error {
	data := map[string]string{invitesv1alpha1.DiscoveryRedeemURLKey: cfg.PublicURL}
	if cfg.TokenAudience != "" {
		data[invitesv1alpha1.DiscoveryTokenAudienceKey] = cfg.TokenAudience
	}
	return mgr.Add(&discoveryPublisher{client: live, data: data, log: mgr.GetLogger().WithName("discovery")})
}

// NeedLeaderElection: one replica writes; all have the same flags.
func (p *discoveryPublisher) NeedLeaderElection() bool { return true }

// Start publishes, retrying with backoff until it succeeds or the manager stops. A failure
// is logged and does not stop the manager: redemption works without discovery, people
// then pass --redeem-url.
func (p *discoveryPublisher) Start(ctx context.Context) error {
	backoff := wait.Backoff{Duration: time.Second, Factor: 2, Jitter: 0.1, Steps: 1 << 30, Cap: 5 * time.Minute}
	_ = wait.ExponentialBackoffWithContext(ctx, backoff, func(ctx context.Context) (bool, error) {
		if err := p.publish(ctx); err != nil {
			p.log.Error(err, "publishing the redemption server's URL; kubectl invite redeem needs --redeem-url until it succeeds",
				"configMap", invitesv1alpha1.DiscoveryNamespace+"/"+invitesv1alpha1.DiscoveryConfigMap)
			return false, nil
		}
		p.log.Info("published the redemption server's URL", "configMap",
			invitesv1alpha1.DiscoveryNamespace+"/"+invitesv1alpha1.DiscoveryConfigMap, "url", p.data[invitesv1alpha1.DiscoveryRedeemURLKey])
		return true, nil
	})
	return nil
}

// publish creates the ConfigMap, or replaces its data when it differs.
func (p *discoveryPublisher) publish(ctx context.Context) error {
	key := client.ObjectKey{Namespace: invitesv1alpha1.DiscoveryNamespace, Name: invitesv1alpha1.DiscoveryConfigMap}
	existing := &corev1.ConfigMap{}
	err := p.client.Get(ctx, key, existing)
	if apierrors.IsNotFound(err) {
		return p.client.Create(ctx, &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: key.Namespace, Name: key.Name, Labels: discoveryLabels},
			Data:       p.data,
		})
	}
	if err != nil {
		return err
	}
	if maps.Equal(existing.Data, p.data) {
		return nil
	}
	existing.Data = p.data
	return p.client.Update(ctx, existing)
}

var discoveryLabels = map[string]string{"app.kubernetes.io/name": "rolecall", "app.kubernetes.io/component": "discovery"}
