package cli_test

import (
	"os"
	"path/filepath"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/cli"
)

var _ = Describe("kubectl invite policy check", func() {
	It("says yes, and which policy allows it", func(ctx SpecContext) {
		Eventually(func(g Gomega) {
			out, err := invite(ctx, "-n", "team-a", "policy", "check", "--clusterrole", "edit", "--as", "lee", "--as-group", "team-leads")
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(out).To(Equal("yes: lee may create this invitation in namespace team-a (allowed by RoleGrantPolicy team-leads)\n"))
		}).Should(Succeed())
	})

	It("says no, and why, with its own exit status", func(ctx SpecContext) {
		out, err := invite(ctx, "-n", "team-a", "policy", "check", "--clusterrole", "view", "--clusterrole", "admin", "--as", "lee", "--as-group", "team-leads")
		Expect(err).To(MatchError(cli.ErrDenied))
		Expect(out).To(HavePrefix("no: "))
		Expect(out).To(ContainSubstring("lee may not offer these grants: no RoleGrantPolicy allows this invitation: RoleGrantPolicy team-leads: grants[1]: clusterRole admin is not grantable (grantable: clusterRole edit, clusterRole view)"))
		Expect(out).To(ContainSubstring("nor do the inviter's own RBAC rights: grants[0]: lee may not create rolebindings in namespace team-a"))
	})

	It("creates nothing", func(ctx SpecContext) {
		_, err := invite(ctx, "-n", "team-a", "policy", "check", "probe", "--clusterrole", "edit", "--as", "lee", "--as-group", "team-leads")
		Expect(err).NotTo(HaveOccurred())
		out, err := invite(ctx, "-n", "team-a", "policy", "check", "probe", "--clusterrole", "edit", "--as", "lee", "--as-group", "team-leads")
		Expect(err).NotTo(HaveOccurred(), "the same name again is no conflict: the first check stored nothing (%s)", out)
	})

	It("reads an invitation from a file", func(ctx SpecContext) {
		file := filepath.Join(GinkgoT().TempDir(), "inv.yaml")
		Expect(os.WriteFile(file, []byte(`
apiVersion: invites.rolecall.dev/v1alpha1
kind: Invitation
metadata: {name: from-file, namespace: team-a}
spec:
  grants: [{clusterRole: view, clusterWide: true}]
`), 0o600)).To(Succeed())
		out, err := invite(ctx, "policy", "check", "-f", file, "--as", "lee", "--as-group", "team-leads")
		Expect(err).To(MatchError(cli.ErrDenied))
		Expect(out).To(ContainSubstring("grants[0]: cluster-wide grants are not allowed"))
	})

	It("tells an administrator who may bind anything that they may", func(ctx SpecContext) {
		out, err := invite(ctx, "-n", "team-a", "policy", "check", "--clusterrole", "cluster-admin")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("yes: you may create this invitation in namespace team-a (allowed by the inviter's own RBAC rights"))
	})

	It("asks for grants when none are given", func(ctx SpecContext) {
		_, err := invite(ctx, "-n", "team-a", "policy", "check")
		Expect(err).To(MatchError(ContainSubstring("say what to grant: --clusterrole NAME[@NAMESPACE] or --role NAME[@NAMESPACE], or give -f FILE")))
	})
})
