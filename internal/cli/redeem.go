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
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
)

// RedeemURLEnv names the environment variable that says where the redemption server is,
// when neither --redeem-url nor a whole link does.
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

Give the whole link (https://HOST/i/TOKEN), or the token or code alone with --redeem-url
or ` + RedeemURLEnv + ` naming the redemption server. Your credential is sent to that
server, so redeem only links to your cluster's rolecall; when --redeem-url or
` + RedeemURLEnv + ` is set, a link to another server is refused.

-o json prints the server's answer as it is. The exit status is 0 once the roles are
yours (also when they already were), 1 otherwise.`,
		Example: `  kubectl invite redeem https://invite.example.com/i/AbCdEf.GhIjKlMnOp
  kubectl invite redeem 7QK4-M2XP-9RTA-C3VD --redeem-url https://invite.example.com
  ` + RedeemURLEnv + `=https://invite.example.com kubectl invite redeem 7QK4-M2XP-9RTA-C3VD
  kubectl invite redeem https://invite.example.com/i/AbCdEf.GhIjKlMnOp --token "$(kubectl create token ci-bot -n tools)"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRedeem(cmd.Context(), config, streams, opts, args[0])
		},
	}
	cmd.Flags().StringVar(&opts.redeemURL, "redeem-url", "", "The redemption server's base URL (default $"+RedeemURLEnv+").")
	cmd.Flags().StringVarP(&opts.output, "output", "o", "", "Output format: json prints the server's answer as received.")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{"json"}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func runRedeem(ctx context.Context, config *genericclioptions.ConfigFlags, streams genericiooptions.IOStreams, opts redeemOptions, arg string) error {
	if opts.output != "" && opts.output != "json" {
		return fmt.Errorf("--output must be json, not %q", opts.output)
	}
	pinned := opts.redeemURL
	if pinned == "" {
		pinned = os.Getenv(RedeemURLEnv)
	}
	base, token, err := redemptionTarget(arg, pinned)
	if err != nil {
		return err
	}
	restConfig, err := config.ToRESTConfig()
	if err != nil {
		return err
	}
	credential, err := bearerCredential(ctx, restConfig)
	if err != nil {
		return err
	}
	answer, err := postRedemption(ctx, base, token, credential)
	if err != nil {
		return err
	}
	if opts.output == "json" && json.Valid(answer.body) {
		if _, err := streams.Out.Write(answer.body); err != nil {
			return err
		}
		return answer.refusal()
	}
	return answer.print(streams.Out)
}

// redemptionTarget finds the server's base URL and the token: both from a link, or the
// token from the argument and the server from --redeem-url or the environment.
func redemptionTarget(arg, pinned string) (base, token string, err error) {
	arg = strings.TrimSpace(arg)
	if !strings.HasPrefix(arg, "https://") && !strings.HasPrefix(arg, "http://") {
		if pinned == "" {
			return "", "", fmt.Errorf("say where the redemption server is: --redeem-url URL or %s, or give the whole link", RedeemURLEnv)
		}
		base, err = checkServer(pinned)
		return base, arg, err
	}
	base, token, err = splitLink(arg)
	if err != nil {
		return "", "", err
	}
	if pinned != "" {
		want, err := checkServer(pinned)
		if err != nil {
			return "", "", err
		}
		if !strings.EqualFold(want, base) {
			return "", "", fmt.Errorf("the link points to %s, not to the redemption server you set (%s); your credential is not sent elsewhere", base, want)
		}
	}
	return base, token, nil
}

// splitLink takes <base>/i/<token> apart; the base may have a path of its own (a server
// behind a path prefix).
func splitLink(link string) (base, token string, err error) {
	u, err := url.Parse(link)
	if err != nil {
		return "", "", fmt.Errorf("not a link: %w", err)
	}
	prefix, escaped, ok := strings.Cut(u.EscapedPath(), linkPath)
	if !ok || escaped == "" || strings.Contains(escaped, "/") {
		return "", "", fmt.Errorf("not an invitation link (…%sTOKEN): %s", linkPath, u.Redacted())
	}
	if token, err = url.PathUnescape(escaped); err != nil {
		return "", "", fmt.Errorf("not an invitation link: %w", err)
	}
	base, err = checkServer(u.Scheme + "://" + u.Host + prefix)
	return base, token, err
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
	// The base URL was checked above: https (or loopback http), and the configured server if one is.
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+redemptionsPath, bytes.NewReader(body)) //nolint:gosec // see above
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
	resp, err := httpClient.Do(req) //nolint:gosec // the checked base URL, as above
	if err != nil {
		return nil, fmt.Errorf("cannot reach the redemption server: %w", unwrapURLError(err))
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("reading the redemption server's answer: %w", err)
	}
	return &redemptionAnswer{status: resp.StatusCode, statusText: resp.Status, retryAfter: resp.Header.Get("Retry-After"), body: data}, nil
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
