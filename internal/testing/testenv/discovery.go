package testenv

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// InstallDiscoveryReader applies config/rbac/discovery_reader.yaml, as a deployment does:
// every authenticated user may read kube-public/rolecall-info, where a manager running the
// redemption server publishes its URL for `kubectl invite redeem`.
func InstallDiscoveryReader(ctx context.Context, c client.Client) error {
	path := filepath.Join(repoRoot(), "config", "rbac", "discovery_reader.yaml")
	data, err := os.ReadFile(path) //nolint:gosec // a file of this repository
	if err != nil {
		return err
	}
	decoder := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		obj := &unstructured.Unstructured{}
		if err := decoder.Decode(&obj.Object); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if len(obj.Object) == 0 {
			continue
		}
		if err := c.Create(ctx, obj); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
	}
}
