package cli_test

import (
	"encoding/json"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/cli"
)

var _ = Describe("kubectl invite create", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) { ns = newNamespace(ctx) })

	It("creates the invitation the flags describe, and says how to hand it over", func(ctx SpecContext) {
		out := stdout(ctx, "-n", ns, "create", "bob", "--email", "bob@example.com",
			"--clusterrole", "edit", "--clusterrole", "view@default", "--role", "deployer",
			"--max-uses", "3", "--expires-after", "48h", "--grant-duration", "720h",
			"--token-type", "code", "--redirect-url", "https://console.example.com/", "--hide-inviter")
		Expect(out).To(Equal(`invitation "bob" created in namespace "` + ns + `"` + "\n" +
			"Next: hand over the code (and its link), which this prints once the token is issued:\n" +
			"  kubectl invite link bob -n " + ns + " --wait 30s\n"))

		inv := getInvitation(ctx, ns, "bob")
		Expect(inv.Spec.Grants).To(Equal([]invitesv1alpha1.Grant{
			{ClusterRole: "edit"}, {ClusterRole: "view", Namespace: "default"}, {Role: "deployer"},
		}))
		Expect(inv.Spec.Email).To(Equal("bob@example.com"))
		Expect(inv.Spec.MaxUses).To(BeEquivalentTo(3))
		Expect(inv.Spec.ExpiresAfter.Duration).To(Equal(48 * time.Hour))
		Expect(inv.Spec.GrantDuration.Duration).To(Equal(720 * time.Hour))
		Expect(inv.Spec.TokenType).To(Equal(invitesv1alpha1.TokenTypeCode))
		Expect(inv.Spec.RedirectURL).To(Equal("https://console.example.com/"))
		Expect(inv.Spec.HideInviter).To(BeTrue())
		Expect(inv.Spec.Inviter.Username).To(Equal("cli-admin"), "the webhook records who created it")
	})

	It("asks for a Custom token when a custom token Secret is named, and says where to put it", func(ctx SpecContext) {
		out := stdout(ctx, "-n", ns, "create", "own", "--clusterrole", "view", "--custom-token-secret", "own-token")
		Expect(out).To(ContainSubstring("Next: put the token in Secret own-token (key \"token\", label invites.rolecall.dev/token=custom)"))
		inv := getInvitation(ctx, ns, "own")
		Expect(inv.Spec.TokenType).To(Equal(invitesv1alpha1.TokenTypeCustom))
		Expect(inv.Spec.CustomTokenSecretRef).To(Equal(&invitesv1alpha1.SecretReference{Name: "own-token"}))
	})

	It("asks for delivery, and says the link will be sent", func(ctx SpecContext) {
		out := stdout(ctx, "-n", ns, "create", "mailed", "--clusterrole", "view", "--email", "ann@example.com", "--deliver", "email")
		Expect(out).To(ContainSubstring("The link will be sent to ann@example.com once the token is issued"))
		Expect(getInvitation(ctx, ns, "mailed").Spec.Delivery).To(Equal(&invitesv1alpha1.Delivery{Email: true}))

		stdout(ctx, "-n", ns, "create", "hooked", "--clusterrole", "view", "--deliver", "webhook")
		Expect(getInvitation(ctx, ns, "hooked").Spec.Delivery).To(Equal(&invitesv1alpha1.Delivery{Webhook: true}))
	})

	It("grants cluster-wide with --cluster-wide", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "wide", "--clusterrole", "view", "--cluster-wide")
		Expect(getInvitation(ctx, ns, "wide").Spec.Grants).To(Equal([]invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}}))
	})

	It("prints the created invitation with -o json, which parses back into an Invitation", func(ctx SpecContext) {
		out := stdout(ctx, "-n", ns, "create", "printed", "--clusterrole", "view", "-o", "json")
		var inv invitesv1alpha1.Invitation
		Expect(json.Unmarshal([]byte(out), &inv)).To(Succeed(), out)
		Expect(inv.APIVersion).To(Equal("invites.rolecall.dev/v1alpha1"))
		Expect(inv.Kind).To(Equal("Invitation"))
		Expect(inv.Name).To(Equal("printed"))
		Expect(inv.UID).NotTo(BeEmpty(), "it is the stored object")
		Expect(inv.ManagedFields).To(BeEmpty())
	})

	It("stores nothing on a server dry run, yet goes through admission", func(ctx SpecContext) {
		out := stdout(ctx, "-n", ns, "create", "trial", "--clusterrole", "view", "--dry-run=server", "-o", "yaml")
		var inv invitesv1alpha1.Invitation
		Expect(yaml.Unmarshal([]byte(out), &inv)).To(Succeed())
		Expect(inv.Spec.Inviter).NotTo(BeNil(), "the webhook stamped the inviter")
		err := env.Admin.Get(ctx, client.ObjectKey{Namespace: ns, Name: "trial"}, &invitesv1alpha1.Invitation{})
		Expect(apierrors.IsNotFound(err)).To(BeTrue())
	})

	It("shows a refusal by policy in the webhook's words, with the denied exit status", func(ctx SpecContext) {
		_, errOut, err := inviteWith(ctx, kubeconfig, "-n", "team-a", "create", "too-much", "--clusterrole", "admin", "--as", "lee", "--as-group", "team-leads")
		Expect(err).To(MatchError(cli.ErrDenied))
		Expect(errOut).To(BeEmpty())
		Expect(cli.Explain(err)).To(MatchRegexp(`^admission webhook "[^"]+" denied the request: `))
		Expect(cli.Explain(err)).To(ContainSubstring(`"too-much" is forbidden: lee may not offer these grants: no RoleGrantPolicy allows this invitation: ` +
			"RoleGrantPolicy team-leads: grants[0]: clusterRole admin is not grantable (grantable: clusterRole edit, clusterRole view)"))
		Expect(strings.Count(cli.Explain(err), "\n")).To(BeZero(), "one line")
	})

	It("shows a validation failure in the API server's words", func(ctx SpecContext) {
		_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "create", "bad", "--clusterrole", "view", "--redirect-url", "ftp://example.com")
		Expect(err).To(MatchError(cli.ErrDenied))
		Expect(err).To(MatchError(ContainSubstring("redirectURL must be an absolute http or https URL")))
	})

	DescribeTable("refuses flags that cannot make an invitation, before asking the cluster",
		func(ctx SpecContext, message string, args ...string) {
			_, _, err := inviteWith(ctx, kubeconfig, append([]string{"-n", ns, "create"}, args...)...)
			Expect(err).To(MatchError(message))
		},
		Entry("no grants", "say what to grant: --clusterrole NAME[@NAMESPACE] or --role NAME[@NAMESPACE], or give -f FILE", "x"),
		Entry("no name", "name the invitation: kubectl invite create NAME --clusterrole ROLE ..., or give -f FILE", "--clusterrole", "view"),
		Entry("unknown token type", `--token-type must be Link, Code or Custom, not "qr"`, "x", "--clusterrole", "view", "--token-type", "qr"),
		Entry("custom secret for a Link", "--custom-token-secret goes with --token-type Custom, and only with it", "x", "--clusterrole", "view", "--token-type", "Link", "--custom-token-secret", "s"),
		Entry("email delivery without an address", "--deliver email needs --email: the address to send the link to", "x", "--clusterrole", "view", "--deliver", "email"),
		Entry("unknown delivery", `--deliver must be email or webhook, not "pigeon"`, "x", "--clusterrole", "view", "--deliver", "pigeon"),
		Entry("unknown dry run", `--dry-run must be "none", "server" or "client", not "maybe"`, "x", "--clusterrole", "view", "--dry-run", "maybe"),
		Entry("unknown output", `unable to match a printer suitable for the output format "xml", allowed formats are: json,kyaml,yaml`, "x", "--clusterrole", "view", "-o", "xml"),
	)

	It("says so when the name is taken", func(ctx SpecContext) {
		stdout(ctx, "-n", ns, "create", "twice", "--clusterrole", "view")
		_, _, err := inviteWith(ctx, kubeconfig, "-n", ns, "create", "twice", "--clusterrole", "view")
		Expect(err).To(MatchError(`invitation "twice" already exists in namespace "` + ns + `"`))
	})

	It("reads an invitation from a file, named on the command line", func(ctx SpecContext) {
		file := writeFile("inv.yaml", `
apiVersion: invites.rolecall.dev/v1alpha1
kind: Invitation
metadata: {name: from-file}
spec:
  grants: [{clusterRole: view}]
`, 0o600)
		stdout(ctx, "-n", ns, "create", "renamed", "-f", file)
		Expect(getInvitation(ctx, ns, "renamed").Spec.Grants).To(Equal([]invitesv1alpha1.Grant{{ClusterRole: "view"}}))
	})
})
