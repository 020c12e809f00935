package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

const (
	sampleNamespace  = "team-a"
	sampleInvitation = "alice"
	sampleCode       = "workshop"
)

// applySamples server-side applies every object in the samples folder, Namespaces first.
func applySamples(ctx context.Context, c client.Client, dir string) error {
	objects, err := readObjects(dir)
	if err != nil {
		return err
	}
	sort.SliceStable(objects, func(i, j int) bool {
		return objects[i].GetKind() == "Namespace" && objects[j].GetKind() != "Namespace"
	})
	for _, obj := range objects {
		if err := c.Patch(ctx, obj, client.Apply, client.FieldOwner("rolecall-dev"), client.ForceOwnership); err != nil { //nolint:staticcheck // unstructured objects have no apply configuration
			return fmt.Errorf("applying %s %s: %w", obj.GetKind(), obj.GetName(), err)
		}
		fmt.Printf("      %s/%s applied\n", strings.ToLower(obj.GetKind()), obj.GetName())
	}
	return nil
}

func readObjects(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objects []*unstructured.Unstructured
	for _, file := range files {
		if filepath.Base(file) == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(file) //nolint:gosec // files of the repository's samples folder
		if err != nil {
			return nil, err
		}
		decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			obj := &unstructured.Unstructured{}
			if err := decoder.Decode(&obj.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("%s: %w", file, err)
			}
			if len(obj.Object) > 0 {
				objects = append(objects, obj)
			}
		}
	}
	return objects, nil
}

// waitForSample waits for a sample invitation to become Active and reads one key of its
// token Secret.
func waitForSample(ctx context.Context, c client.Client, name, key string) (string, error) {
	var value string
	err := wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		inv := &invitesv1alpha1.Invitation{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: sampleNamespace, Name: name}, inv); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		if inv.Status.Phase != invitesv1alpha1.PhaseActive || inv.Status.TokenSecretRef == nil {
			return false, nil
		}
		secret := &corev1.Secret{}
		if err := c.Get(ctx, client.ObjectKey{Namespace: sampleNamespace, Name: inv.Status.TokenSecretRef.Name}, secret); err != nil {
			return false, client.IgnoreNotFound(err)
		}
		value = string(secret.Data[key])
		return value != "", nil
	})
	if err != nil {
		return "", fmt.Errorf("waiting for invitation %s/%s to become Active (see bin/dev/manager.log): %w", sampleNamespace, name, err)
	}
	return value, nil
}

func writeEnvFile(path, kubeconfig, redeemURL, issuer, mailURL string) error {
	content := fmt.Sprintf("KUBECONFIG=%s\nROLECALL_REDEEM_URL=%s\nROLECALL_IDP_ISSUER=%s\nROLECALL_MAILPIT_URL=%s\n",
		kubeconfig, redeemURL, issuer, mailURL)
	return os.WriteFile(path, []byte(content), 0o600)
}

type summary struct {
	kubeconfig, assets, redeemURL, link, code, envFile, issuer, mailURL string
}

func printSummary(s summary) {
	fmt.Printf(`
rolecall is running on a local control plane.

  kubeconfig       %s
  kubectl          export KUBECONFIG=%s PATH=$PWD/bin:%s:$PATH
  redemption URL   %s
  OpenID provider  %s   (kube-apiserver and rolecall trust it; users are oidc:<name>)
  sample link      %s   (invitation %s/%s, for alice@example.com)
  sample code      %s   (invitation %s/%s, 5 uses)
  mail (mailpit)   %s   (the sample link was mailed to alice@example.com: open it there)
  for scripts      source %s

Accept the sample invitation in a browser:
      open the sample link, press "Sign in and accept", sign in as alice / alice.
      Demo users: alice/alice (alice@example.com, verified), bob/bob (email not verified),
      carol/carol (carol@example.com, verified). The provider's certificate is made for
      this run: let your browser proceed past the warning for 127.0.0.1.
      kubectl auth can-i create deployments -n %s --as oidc:alice

Or type the code at %s as any demo user.

Try:  kubectl get invitations -A
      kubectl describe invitation -n %s %s

Redeem the code as a service account (any credential the API server accepts works):
      kubectl create serviceaccount newcomer -n default
      curl -s -X POST %s/api/v1/redemptions \
        -H "Authorization: Bearer $(kubectl create token newcomer -n default)" \
        -d '{"token":"%s"}'
      kubectl auth can-i list pods -n %s --as system:serviceaccount:default:newcomer

Press Ctrl-C to stop everything.
`, s.kubeconfig, s.kubeconfig, s.assets, s.redeemURL, s.issuer, s.link, sampleNamespace, sampleInvitation, s.code, sampleNamespace, sampleCode,
		s.mailURL, s.envFile, sampleNamespace, s.redeemURL, sampleNamespace, sampleInvitation, s.redeemURL, s.code, sampleNamespace)
}
