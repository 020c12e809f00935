package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// RedeemURLEnv names the environment variable that says where the redemption server is,
// when --redeem-url does not.
const RedeemURLEnv = "ROLECALL_REDEEM_URL"

const (
	// redemptionsPath is the redemption server's API, below its base URL.
	redemptionsPath = "/api/v1/redemptions"
	// linkPath precedes the token in an invitation link: <base>/i/<token>.
	linkPath = "/i/"
	// maxAnswer bounds what is read of an answer: a redemption result is a few hundred bytes.
	maxAnswer = 1 << 20
	// redeemTimeout covers the server's own 30 s for checking the credential, and more.
	redeemTimeout = 60 * time.Second
)

type redeemOptions struct {
	redeemURL string
	output    string
}

func newRedeemCommand(config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams) *cobra.Command {
	var opts redeemOptions
	cmd := &cobra.Command{
		Use:   "redeem TOKEN_OR_LINK",
		Short: "Accept an invitation as the user of your current kubeconfig",
		Long: `Redeems an invitation with your current kubeconfig's credential (an OIDC ID token, a
service account token, whatever your kubeconfig presents as a bearer token). The roles are
bound to exactly the username the API server sees for that credential.

Your credential goes only to your cluster's redemption server, and the command finds that
server itself: from --redeem-url, else ` + RedeemURLEnv + `, else the ConfigMap
` + discoveryObject + ` that rolecall publishes in the cluster your kubeconfig points
at. A link is only where the token comes from: a link to any other server is refused
before anything is sent.

-o json prints the server's answer as it is. The exit status is 0 once the roles are
yours (also when they already were), 1 otherwise, also when the answer is not one that
rolecall's redemption server gives.`,
		Example: `  kubectl invite redeem https://invite.example.com/i/AbCdEf.GhIjKlMnOp
  kubectl invite redeem 7QK4-M2XP-9RTA-C3VD
  kubectl invite redeem 7QK4-M2XP-9RTA-C3VD --redeem-url https://invite.example.com
  # a service account token meant for rolecall alone (see the server's --token-audience);
  # the API server refuses it, so it cannot say where rolecall is: name the server
  kubectl invite redeem 7QK4-M2XP-9RTA-C3VD --redeem-url https://invite.example.com \
    --token "$(kubectl create token ci-bot -n tools --audience rolecall --duration 10m)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRedeem(cmd.Context(), config, streams, opts, args[0])
		},
	}
	cmd.Flags().StringVar(&opts.redeemURL, "redeem-url", "", "The redemption server's base URL (default $"+RedeemURLEnv+", else what the cluster publishes in "+discoveryObject+").")
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "Output format: json prints the server's answer as received.")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// runRedeem checks everything it can before the credential leaves the machine: the server
// is pinned, the link (if any) points to it, and only then is the credential read and sent.
func runRedeem(ctx context.Context, config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, opts redeemOptions, arg string) error {
	if opts.output != "" && opts.output != "json" {
		return fmt.Errorf("--output must be json, not %q", opts.output)
	}
	restConfig, err := config.ToRESTConfig()
	if err != nil {
		return err
	}
	if err := refuseImpersonation(restConfig); err != nil {
		return err
	}
	server, err := findServer(ctx, opts.redeemURL, restConfig)
	if err != nil {
		return err
	}
	token, err := tokenFor(arg, server)
	if err != nil {
		return err
	}
	credential, err := bearerCredential(ctx, restConfig)
	if err != nil {
		return err
	}
	answer, err := postRedemption(ctx, server.base, token, credential)
	if err != nil {
		return err
	}
	result, err := answer.decode()
	if opts.output == "json" && answer.fromRolecall(err) {
		if _, werr := streams.Out.Write(answer.body); werr != nil {
			return werr
		}
		return err
	}
	if err != nil {
		return err
	}
	return answer.print(streams.Out, result)
}

// tokenFor takes the token from the argument: a token or code as it is, or the token part
// of a link, which must point to the pinned server. Nothing else is ever taken from a link.
func tokenFor(arg string, server redemptionServer) (string, error) {
	arg = strings.TrimSpace(arg)
	if !strings.Contains(arg, "://") {
		return arg, nil
	}
	origin, token, err := splitLink(arg)
	if err != nil {
		return "", err
	}
	if want := originOf(server.base); !strings.EqualFold(origin, want) {
		return "", fmt.Errorf("the link points to %s, not to your cluster's redemption server %s (from %s); your credential is not sent to it",
			origin, want, server.source)
	}
	return token, nil
}

// splitLink takes <base>/i/<token> apart into the link's origin and its token; the base may
// have a path of its own (a server behind a path prefix).
func splitLink(link string) (origin, token string, err error) {
	u, err := url.Parse(link)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return "", "", fmt.Errorf("not an invitation link (https://…%sTOKEN): %q", linkPath, link)
	}
	_, escaped, ok := strings.Cut(u.EscapedPath(), linkPath)
	if !ok || escaped == "" || strings.Contains(escaped, "/") {
		return "", "", fmt.Errorf("not an invitation link (…%sTOKEN): %s", linkPath, u.Redacted())
	}
	if token, err = url.PathUnescape(escaped); err != nil {
		return "", "", fmt.Errorf("not an invitation link: %w", err)
	}
	return originOf(link), token, nil
}

// originOf is scheme://host[:port] of a URL, without a port its scheme implies, so that
// https://example.com and https://example.com:443 are one origin.
func originOf(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	scheme, host, port := strings.ToLower(u.Scheme), strings.ToLower(u.Hostname()), u.Port()
	if (scheme == "https" && port == "443") || (scheme == "http" && port == "80") {
		port = ""
	}
	if port != "" {
		host = net.JoinHostPort(host, port)
	} else if strings.Contains(host, ":") {
		host = "[" + host + "]"
	}
	return scheme + "://" + host
}

// checkServer insists on https, the credential travelling with the request, except to
// this machine (a port-forward, a local test server).
func checkServer(raw string) (string, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil || u.Host == "" {
		return "", fmt.Errorf("the redemption server's URL must be absolute, such as https://invite.example.com: %q", raw)
	}
	if u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("the redemption server's URL must be a plain base URL, such as https://invite.example.com")
	}
	if u.Scheme != "https" && (u.Scheme != "http" || !isLoopback(u.Hostname())) {
		return "", fmt.Errorf("the redemption server must be reached over https, since your credential travels with the request: %s", u.Redacted())
	}
	return u.String(), nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// postRedemption sends the token with the credential. Redirects are not followed: the
// credential is meant for this server alone.
func postRedemption(ctx context.Context, base, token, credential string) (*redemptionAnswer, error) {
	body, err := json.Marshal(map[string]string{"token": token})
	if err != nil {
		return nil, err
	}
	// The base URL is the pinned server, checked: https (or loopback http).
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+redemptionsPath, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+credential)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	httpClient := &http.Client{
		Timeout:       redeemTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := httpClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("cannot reach the redemption server: %w", unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the redemption server's answer: %w", err)
	}
	return &redemptionAnswer{status: resp.StatusCode, statusText: resp.Status, retryAfter: resp.Header.Get("Retry-After"),
		contentType: resp.Header.Get("Content-Type"), body: data}, nil
}

// unwrapURLError drops the "Post "<url>": " that net/http puts before the cause: the URL
// is the one the user gave.
func unwrapURLError(err error) error {
	var urlErr *url.Error
	if errors.As(err, &urlErr) {
		return urlErr.Err
	}
	return err
}
