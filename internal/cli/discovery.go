package cli

import (
	"context"
	"fmt"
	"os"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// redemptionServer is the one server `redeem` sends the credential to, and what named it.
type redemptionServer struct {
	// base is the server's checked base URL.
	base string
	// source says where base came from, for messages.
	source string
}

// discoveryObject is how messages name the discovery ConfigMap.
const discoveryObject = invitesv1alpha1.DiscoveryNamespace + "/" + invitesv1alpha1.DiscoveryConfigMap

// findServer pins the redemption server: --redeem-url, else $ROLECALL_REDEEM_URL, else what
// the cluster of the current kubeconfig publishes. Never a link: whoever sends a link
// chooses its host, and the credential must not go wherever a link points.
func findServer(ctx context.Context, flag string, config *rest.Config) (redemptionServer, error) {
	if flag != "" {
		base, err := checkServer(flag)
		return redemptionServer{base: base, source: "--redeem-url"}, err
	}
	if env := os.Getenv(RedeemURLEnv); env != "" {
		base, err := checkServer(env)
		return redemptionServer{base: base, source: "$" + RedeemURLEnv}, err
	}
	return discoverServer(ctx, config)
}

// discoverServer reads the discovery ConfigMap through the kubeconfig: the API server is
// already trusted with the credential, and the manager wrote what it says.
func discoverServer(ctx context.Context, config *rest.Config) (redemptionServer, error) {
	core, err := corev1client.NewForConfig(config)
	if err != nil {
		return redemptionServer{}, err
	}
	cm, err := core.ConfigMaps(invitesv1alpha1.DiscoveryNamespace).Get(ctx, invitesv1alpha1.DiscoveryConfigMap, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err), apierrors.IsForbidden(err), err == nil && cm.Data[invitesv1alpha1.DiscoveryRedeemURLKey] == "":
		return redemptionServer{}, fmt.Errorf("cannot tell where your cluster's redemption server is: %s does not say (or you may not read it); "+
			"give --redeem-url URL or set %s, with the URL your cluster's administrators give you", discoveryObject, RedeemURLEnv)
	case apierrors.IsUnauthorized(err):
		return redemptionServer{}, fmt.Errorf("the API server does not accept your credential, so it cannot say where its redemption server is "+
			"(a token minted for rolecall's audience is meant for rolecall alone): give --redeem-url URL or set %s", RedeemURLEnv)
	case err != nil:
		return redemptionServer{}, fmt.Errorf("reading %s, where your cluster says where its redemption server is: %w", discoveryObject, err)
	}
	base, err := checkServer(cm.Data[invitesv1alpha1.DiscoveryRedeemURLKey])
	if err != nil {
		return redemptionServer{}, fmt.Errorf("%s: %w", discoveryObject, err)
	}
	return redemptionServer{base: base, source: "your cluster's " + discoveryObject}, nil
}
