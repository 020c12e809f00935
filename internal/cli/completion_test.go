package cli_test

import (
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

var _ = Describe("Shell completion", func() {
	DescribeTable("prints a completion script for each shell",
		func(ctx SpecContext, shell, marker string) {
			Expect(stdout(ctx, "completion", shell)).To(ContainSubstring(marker))
		},
		Entry("bash", "bash", "__start_kubectl-invite"),
		Entry("zsh", "zsh", "#compdef kubectl-invite"),
		Entry("fish", "fish", "complete -c kubectl-invite"),
		Entry("powershell", "powershell", "Register-ArgumentCompleter"),
	)

	It("says how kubectl finds the plugin's completions", func(ctx SpecContext) {
		Expect(stdout(ctx, "completion", "--help")).To(ContainSubstring("kubectl_complete-invite"))
	})

	It("completes invitation names in the namespace, for each command that takes one", func(ctx SpecContext) {
		ns := newNamespace(ctx)
		stdout(ctx, "-n", ns, "create", "alice", "--clusterrole", "view")
		stdout(ctx, "-n", ns, "create", "albert", "--clusterrole", "view")
		stdout(ctx, "-n", ns, "create", "bob", "--clusterrole", "view")
		for _, command := range []string{"get", "link", "revoke", "resend"} {
			out := stdout(ctx, "__complete", "-n", ns, command, "al")
			names := strings.Split(strings.TrimSpace(out), "\n")
			Expect(names[len(names)-1]).To(Equal(":4"), "no file names (%s)", command)
			Expect(names[:len(names)-1]).To(ConsistOf(MatchRegexp(`^alice(\t.*)?$`), MatchRegexp(`^albert(\t.*)?$`)), command)
		}
	})

	It("completes nothing after the name", func(ctx SpecContext) {
		Expect(stdout(ctx, "__complete", "get", "alice", "")).To(HavePrefix(":4\n"))
	})

	It("completes the values of flags with a fixed set", func(ctx SpecContext) {
		Expect(stdout(ctx, "__complete", "create", "x", "--token-type", "")).To(HavePrefix("Link\nCode\nCustom\n:4\n"))
		Expect(stdout(ctx, "__complete", "create", "x", "--deliver", "")).To(HavePrefix("email\nwebhook\n:4\n"))
	})
})
