package cli_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/cli"
)

// invite runs `kubectl invite` with the administrator's kubeconfig and returns its output.
func invite(ctx context.Context, args ...string) (string, error) {
	out, errOut, err := inviteWith(ctx, kubeconfig, args...)
	return out + errOut, err
}

// inviteWith runs `kubectl invite` in-process with the given kubeconfig and returns what
// it wrote to stdout and to stderr apart.
func inviteWith(ctx context.Context, kubeconfigPath string, args ...string) (string, string, error) {
	var out, errOut bytes.Buffer
	root := cli.NewRootCommand(genericiooptions.IOStreams{In: &bytes.Buffer{}, Out: &out, ErrOut: &errOut})
	root.SetArgs(append([]string{"--kubeconfig", kubeconfigPath}, args...))
	err := root.ExecuteContext(ctx)
	return out.String(), errOut.String(), err
}

// stdout runs `kubectl invite` as the administrator, expects success and returns stdout.
func stdout(ctx context.Context, args ...string) string {
	GinkgoHelper()
	out, errOut, err := inviteWith(ctx, kubeconfig, args...)
	Expect(err).NotTo(HaveOccurred(), "kubectl invite %v: %s", args, errOut)
	return out
}

// kubeconfigWith is the administrator's kubeconfig (same cluster, same CA) with its user
// replaced by the given one.
func kubeconfigWith(user *clientcmdapi.AuthInfo) string {
	GinkgoHelper()
	cfg, err := clientcmd.LoadFromFile(kubeconfig)
	Expect(err).NotTo(HaveOccurred())
	for _, c := range cfg.Contexts {
		cfg.AuthInfos[c.AuthInfo] = user
	}
	path := filepath.Join(GinkgoT().TempDir(), "kubeconfig")
	Expect(clientcmd.WriteToFile(*cfg, path)).To(Succeed())
	return path
}

// writeFile writes a file in a temporary directory and returns its path.
func writeFile(name, content string, mode os.FileMode) string {
	GinkgoHelper()
	path := filepath.Join(GinkgoT().TempDir(), name)
	Expect(os.WriteFile(path, []byte(content), mode)).To(Succeed())
	return path
}

// getInvitation reads an invitation straight from the API server.
func getInvitation(ctx context.Context, namespace, name string) *invitesv1alpha1.Invitation {
	GinkgoHelper()
	inv := &invitesv1alpha1.Invitation{}
	Expect(env.Admin.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, inv)).To(Succeed())
	return inv
}

// tokenSecret reads an invitation's token Secret straight from the API server, once the
// invitation names one.
func tokenSecret(ctx context.Context, namespace, name string) *corev1.Secret {
	GinkgoHelper()
	secret := &corev1.Secret{}
	Eventually(func(g Gomega) {
		inv := getInvitation(ctx, namespace, name)
		g.Expect(inv.Status.TokenSecretRef).NotTo(BeNil())
		g.Expect(env.Admin.Get(ctx, client.ObjectKey{Namespace: namespace, Name: inv.Status.TokenSecretRef.Name}, secret)).To(Succeed())
	}).Should(Succeed())
	return secret
}
