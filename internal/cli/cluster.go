package cli

import (
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// scheme knows the built-in kinds and rolecall's: the plugin needs no more, and building
// its own keeps the manager's dependencies out of the plugin.
var scheme = newScheme()

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, invitesv1alpha1.AddToScheme} {
		if err := add(s); err != nil {
			panic(err)
		}
	}
	return s
}

// cluster is what a command needs to talk to the API server: the namespace chosen by
// -n or the kubeconfig's context, and a client acting as the kubeconfig's user (or --as).
type cluster struct {
	namespace string
	client    client.Client
}

// connect reads the kubeconfig and flags. It contacts nothing yet: the client discovers
// the API lazily, on its first request. The API server's warnings go to warnings as
// kubectl shows them; the client's default would hand them to a logger the plugin never
// sets up.
func connect(config *genericclioptions.ConfigFlags, warnings io.Writer) (*cluster, error) {
	namespace, _, err := config.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, err
	}
	restConfig, err := config.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	restConfig.WarningHandler = rest.NewWarningWriter(warnings, rest.WarningWriterOptions{Deduplicate: true})
	c, err := client.New(restConfig, client.Options{Scheme: scheme})
	if err != nil {
		return nil, err
	}
	return &cluster{namespace: namespace, client: c}, nil
}
