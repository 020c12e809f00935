// Package oidcconfig writes the kube-apiserver AuthenticationConfiguration that trusts one
// OpenID Connect issuer. The local control plane and the tests hand the same file to
// kube-apiserver and to the manager, so both map an ID token to the same user.
package oidcconfig

import (
	"os"
	"path/filepath"

	"sigs.k8s.io/yaml"
)

// Issuer describes the issuer and how its claims become a Kubernetes user.
type Issuer struct {
	URL      string
	CAPEM    []byte
	Audience string
	// UsernamePrefix and GroupsPrefix keep OIDC users apart from other kinds (such as
	// "oidc:alice" against a service account or a certificate user called alice).
	UsernamePrefix, GroupsPrefix string
}

// Write writes the configuration to dir/authentication-config.yaml and returns its path.
// The username comes from the "sub" claim, the groups from "groups".
func Write(dir string, iss Issuer) (string, error) {
	config := map[string]any{
		"apiVersion": "apiserver.config.k8s.io/v1",
		"kind":       "AuthenticationConfiguration",
		"jwt": []any{map[string]any{
			"issuer": map[string]any{
				"url":                  iss.URL,
				"audiences":            []string{iss.Audience},
				"certificateAuthority": string(iss.CAPEM),
			},
			"claimMappings": map[string]any{
				"username": map[string]any{"claim": "sub", "prefix": iss.UsernamePrefix},
				"groups":   map[string]any{"claim": "groups", "prefix": iss.GroupsPrefix},
			},
		}},
	}
	raw, err := yaml.Marshal(config)
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, "authentication-config.yaml")
	return path, os.WriteFile(path, raw, 0o600)
}
