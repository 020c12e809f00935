package bindings_test

import (
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/bindings"
)

var _ = DescribeTable("ReplaceScopes names, once each, where upgrade: Replace removes earlier grants",
	func(grants []invitesv1alpha1.Grant, want []string) {
		inv := &invitesv1alpha1.Invitation{
			ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "lead"},
			Spec:       invitesv1alpha1.InvitationSpec{Grants: grants, Upgrade: invitesv1alpha1.UpgradeReplace},
		}
		Expect(bindings.ReplaceScopes(inv)).To(Equal(want))
	},
	Entry("a grant in the invitation's namespace",
		[]invitesv1alpha1.Grant{{ClusterRole: "edit"}, {Role: "deployer"}},
		[]string{"namespace team-a"}),
	Entry("grants in other namespaces",
		[]invitesv1alpha1.Grant{{ClusterRole: "edit"}, {ClusterRole: "view", Namespace: "team-a-prod"}},
		[]string{"namespace team-a", "namespace team-a-prod"}),
	Entry("a cluster-wide grant",
		[]invitesv1alpha1.Grant{{ClusterRole: "view", ClusterWide: true}, {ClusterRole: "view", ClusterWide: true}},
		[]string{"the whole cluster (roles granted cluster-wide)"}),
)
