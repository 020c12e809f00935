package v1alpha1

// Where the redemption server says where it is. The manager publishes a ConfigMap that
// every authenticated user may read in the cluster their kubeconfig points at, so that
// `kubectl invite redeem` learns the server from the cluster it already trusts with its
// credential, never from a link someone sent.
const (
	// DiscoveryNamespace holds the discovery ConfigMap; kube-public is where clusters publish
	// what every user may read (cluster-info lives there too).
	DiscoveryNamespace = "kube-public"
	// DiscoveryConfigMap is the discovery ConfigMap's name.
	DiscoveryConfigMap = "rolecall-info"
	// DiscoveryRedeemURLKey holds the redemption server's public base URL (--public-url).
	DiscoveryRedeemURLKey = "redeemURL"
	// DiscoveryTokenAudienceKey holds the audience the redemption server accepts
	// audience-bound service account tokens for (--token-audience), when it has one.
	DiscoveryTokenAudienceKey = "tokenAudience"
)
