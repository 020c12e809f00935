package cli_test

import (
	"encoding/json"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

var _ = Describe("kubectl invite list and get", func() {
	var ns string
	BeforeEach(func(ctx SpecContext) {
		ns = newNamespace(ctx)
		stdout(ctx, "-n", ns, "create", "ann", "--clusterrole", "edit", "--email", "ann@example.com")
		stdout(ctx, "-n", ns, "create", "workshop", "--clusterrole", "view", "--role", "deployer@default", "--max-uses", "20", "--token-type", "Code")
		stdout(ctx, "-n", ns, "link", "ann", "--wait", "20s")
		stdout(ctx, "-n", ns, "link", "workshop", "--wait", "20s")
	})

	It("lists the namespace's invitations as a table", func(ctx SpecContext) {
		lines := strings.Split(strings.TrimSpace(stdout(ctx, "-n", ns, "list")), "\n")
		Expect(lines).To(HaveLen(3))
		Expect(strings.Fields(lines[0])).To(Equal([]string{"NAME", "PHASE", "GRANTS", "EMAIL", "USES", "EXPIRES", "AGE"}))
		Expect(strings.Fields(lines[1])).To(HaveExactElements("ann", "Active", "edit", "ann@example.com", "0/1", "in", MatchRegexp(`^(71h|72h|2d23h|3d)`), MatchRegexp(`^\d+s$`)))
		Expect(strings.Fields(lines[2])).To(HaveExactElements("workshop", "Active", "view,", "role/deployer@default", "<none>", "0/20", "in", Not(BeEmpty()), Not(BeEmpty())))
	})

	It("lists every namespace's with -A, the namespace first", func(ctx SpecContext) {
		out := stdout(ctx, "list", "-A")
		Expect(strings.Fields(strings.SplitN(out, "\n", 2)[0])).To(HaveExactElements("NAMESPACE", "NAME", "PHASE", "GRANTS", "EMAIL", "USES", "EXPIRES", "AGE"))
		Expect(out).To(MatchRegexp(`(?m)^` + ns + `\s+ann\s+Active\s`))
		Expect(out).To(MatchRegexp(`(?m)^` + ns + `\s+workshop\s+Active\s`))
	})

	It("prints an InvitationList with -o json, which parses back into the Go types", func(ctx SpecContext) {
		var list invitesv1alpha1.InvitationList
		Expect(json.Unmarshal([]byte(stdout(ctx, "-n", ns, "list", "-o", "json")), &list)).To(Succeed())
		Expect(list.Kind).To(Equal("InvitationList"))
		Expect(list.Items).To(HaveLen(2))
		Expect(list.Items[0].Kind).To(Equal("Invitation"))
		Expect(list.Items[0].APIVersion).To(Equal("invites.rolecall.dev/v1alpha1"))
		Expect(list.Items[0].Name).To(Equal("ann"))
		Expect(list.Items[1].Spec.TokenType).To(Equal(invitesv1alpha1.TokenTypeCode))
		Expect(list.Items[1].Status.UsesSummary).To(Equal("0/20"))
	})

	It("says when there is nothing to list, on stderr", func(ctx SpecContext) {
		out, errOut, err := inviteWith(ctx, kubeconfig, "-n", newNamespace(ctx), "list")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(BeEmpty())
		Expect(errOut).To(HavePrefix("No invitations found in namespace"))
	})

	It("gets one invitation as a table row", func(ctx SpecContext) {
		lines := strings.Split(strings.TrimSpace(stdout(ctx, "-n", ns, "get", "ann")), "\n")
		Expect(lines).To(HaveLen(2))
		Expect(strings.Fields(lines[1])[:5]).To(Equal([]string{"ann", "Active", "edit", "ann@example.com", "0/1"}))
	})

	It("gets one invitation with -o json and -o yaml, which parse back into an Invitation", func(ctx SpecContext) {
		var inv invitesv1alpha1.Invitation
		Expect(json.Unmarshal([]byte(stdout(ctx, "-n", ns, "get", "workshop", "-o", "json")), &inv)).To(Succeed())
		Expect(inv.Kind).To(Equal("Invitation"))
		Expect(inv.Spec.Grants).To(Equal([]invitesv1alpha1.Grant{{ClusterRole: "view"}, {Role: "deployer", Namespace: "default"}}))
		Expect(inv.Status.Phase).To(Equal(invitesv1alpha1.PhaseActive))
		Expect(stdout(ctx, "-n", ns, "get", "workshop", "-o", "yaml")).To(ContainSubstring("kind: Invitation\n"))
	})

	It("names the namespace when the invitation is not there", func(ctx SpecContext) {
		for _, command := range [][]string{{"get", "nobody"}, {"link", "nobody"}, {"revoke", "nobody"}, {"resend", "nobody"}} {
			_, _, err := inviteWith(ctx, kubeconfig, append([]string{"-n", ns}, command...)...)
			Expect(err).To(MatchError(`invitation "nobody" not found in namespace "`+ns+`"`), "%v", command)
		}
	})
})
