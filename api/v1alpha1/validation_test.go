package v1alpha1_test

import (
	"context"
	"fmt"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const validInvitation = `
apiVersion: invites.rolecall.dev/v1alpha1
kind: Invitation
metadata: {generateName: inv-}
spec:
  grants: [{clusterRole: edit}]
`

const validPolicy = `
apiVersion: invites.rolecall.dev/v1alpha1
kind: RoleGrantPolicy
metadata: {generateName: rgp-}
spec:
  inviters: [{kind: Group, name: team-leads}]
  grantableRoles: [{clusterRole: edit}]
`

// object parses YAML and merges a spec fragment into it.
func object(base, specYAML string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	Expect(yaml.Unmarshal([]byte(base), &u.Object)).To(Succeed())
	if specYAML != "" {
		patch := map[string]any{}
		Expect(yaml.Unmarshal([]byte(specYAML), &patch)).To(Succeed())
		spec, _, _ := unstructured.NestedMap(u.Object, "spec")
		for k, v := range patch {
			if v == nil {
				delete(spec, k)
			} else {
				spec[k] = v
			}
		}
		Expect(unstructured.SetNestedMap(u.Object, spec, "spec")).To(Succeed())
	}
	return u
}

func namespace(ctx context.Context) string {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "schema-"}}
	Expect(k8sClient.Create(ctx, ns)).To(Succeed())
	return ns.Name
}

// expectRejected asserts the API server refused the object as invalid, naming the field
// and saying why.
func expectRejected(err error, field, why string) {
	Expect(err).To(HaveOccurred())
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "expected Invalid, got %v", err)
	Expect(err.Error()).To(ContainSubstring(field))
	Expect(err.Error()).To(ContainSubstring(why))
}

var manyGrants = func() string {
	grants := make([]string, 17)
	for i := range grants {
		grants[i] = fmt.Sprintf("{clusterRole: r%d}", i)
	}
	return "grants: [" + strings.Join(grants, ", ") + "]"
}()

var _ = Describe("Invitation schema", func() {
	It("accepts a minimal invitation and fills in the defaults", func(ctx SpecContext) {
		inv := object(validInvitation, "")
		inv.SetNamespace(namespace(ctx))
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
		Expect(inv.Object["spec"]).To(HaveKeyWithValue("maxUses", BeEquivalentTo(1)))
		Expect(inv.Object["spec"]).To(HaveKeyWithValue("tokenType", "Link"))
		Expect(inv.Object["spec"]).To(HaveKeyWithValue("upgrade", "Add"))
	})

	It("accepts every field used well", func(ctx SpecContext) {
		inv := object(validInvitation, `
email: alice@example.com
grants:
  - clusterRole: edit
  - {clusterRole: view, namespace: team-a-prod}
  - role: deployer
  - {clusterRole: cluster-reader, clusterWide: true, idpGroup: readers}
maxUses: 5
expiresAfter: 72h
tokenType: Code
redirectURL: https://console.example.com/welcome
grantDuration: 720h
upgrade: Replace
delivery: {email: true}
hideInviter: true
`)
		inv.SetNamespace(namespace(ctx))
		Expect(k8sClient.Create(ctx, inv)).To(Succeed())
	})

	DescribeTable("rejects a bad invitation, naming the field and the reason",
		func(ctx SpecContext, specYAML, field, why string) {
			inv := object(validInvitation, specYAML)
			inv.SetNamespace(namespace(ctx))
			expectRejected(k8sClient.Create(ctx, inv), field, why)
		},
		Entry("no grants", "grants: null", "spec.grants", "Required value"),
		Entry("empty grants", "grants: []", "spec.grants", "at least 1 items"),
		Entry("more than 16 grants", manyGrants, "spec.grants", "must have at most 16 items"),
		Entry("grant with role and clusterRole", "grants: [{role: a, clusterRole: b}]", "spec.grants[0]", "exactly one of role or clusterRole"),
		Entry("grant with neither role nor clusterRole", "grants: [{namespace: x}]", "spec.grants[0]", "exactly one of role or clusterRole"),
		Entry("cluster-wide Role", "grants: [{role: deployer, clusterWide: true}]", "spec.grants[0]", "clusterWide requires clusterRole"),
		Entry("cluster-wide with a namespace", "grants: [{clusterRole: view, clusterWide: true, namespace: a}]", "spec.grants[0]", "mutually exclusive"),
		Entry("grant namespace not a DNS label", "grants: [{clusterRole: view, namespace: Team_A}]", "spec.grants[0].namespace", "should match"),
		Entry("role name too long", "grants: [{role: "+strings.Repeat("r", 254)+"}]", "spec.grants[0].role", "Too long"),
		Entry("empty clusterRole", `grants: [{clusterRole: ""}]`, "spec.grants[0].clusterRole", "at least 1 chars"),
		Entry("maxUses zero", "maxUses: 0", "spec.maxUses", "greater than or equal to 1"),
		Entry("maxUses negative", "maxUses: -3", "spec.maxUses", "greater than or equal to 1"),
		Entry("maxUses absurd", "maxUses: 2000000", "spec.maxUses", "less than or equal to 1000000"),
		Entry("expiresAfter zero", "expiresAfter: 0s", "spec.expiresAfter", "must be a positive duration"),
		Entry("expiresAfter negative", "expiresAfter: -1h", "spec.expiresAfter", "should match"),
		Entry("expiresAfter not a duration", "expiresAfter: soon", "spec.expiresAfter", "should match"),
		Entry("grantDuration zero", "grantDuration: 0h", "spec.grantDuration", "must be a positive duration"),
		Entry("unknown tokenType", "tokenType: Magic", "spec.tokenType", "Unsupported value"),
		Entry("Custom without its Secret", "tokenType: Custom", "spec", "customTokenSecretRef is required with tokenType Custom"),
		Entry("customTokenSecretRef on a Link", "customTokenSecretRef: {name: s}", "spec", "customTokenSecretRef is required with tokenType Custom and not allowed otherwise"),
		Entry("email without a domain", "email: alice", "spec.email", "should match"),
		Entry("email too long", "email: "+strings.Repeat("a", 250)+"@example.com", "spec.email", "Too long"),
		Entry("redirect to javascript:", "redirectURL: 'javascript:alert(1)'", "spec.redirectURL", "absolute http or https URL"),
		Entry("relative redirect", "redirectURL: /welcome", "spec.redirectURL", "absolute http or https URL"),
		Entry("unknown upgrade mode", "upgrade: Merge", "spec.upgrade", "Unsupported value"),
		Entry("a role name with a slash", "grants: [{role: 'a/b'}]", "spec.grants[0].role", "must be a role name RBAC can refer to"),
		Entry("a clusterRole name with a percent sign", "grants: [{clusterRole: 'view%2Fx'}]", "spec.grants[0].clusterRole", "without '/' or '%'"),
		Entry("a clusterRole named ..", "grants: [{clusterRole: '..'}]", "spec.grants[0].clusterRole", "not '.' or '..'"),
		Entry("a role named .", "grants: [{role: '.'}]", "spec.grants[0].role", "not '.' or '..'"),
		Entry("a custom token Secret name that is no Secret name", "{tokenType: Custom, customTokenSecretRef: {name: 'Other_Token'}}", "spec.customTokenSecretRef.name", "should match"),
		Entry("a custom token Secret name with a slash", "{tokenType: Custom, customTokenSecretRef: {name: '../token'}}", "spec.customTokenSecretRef.name", "should match"),
		Entry("email with a display name", "email: 'Alice <alice@example.com>'", "spec.email", "should match"),
		Entry("email with a quoted local part", `email: '"a b"@example.com'`, "spec.email", "should match"),
		Entry("email whose domain is no host name", "email: 'alice@exa_mple.com'", "spec.email", "should match"),
		Entry("email with a local part over 64 characters", "email: "+strings.Repeat("a", 65)+"@example.com", "spec.email", "should match"),
	)

	Context("on update", func() {
		var inv *unstructured.Unstructured
		BeforeEach(func(ctx SpecContext) {
			inv = object(validInvitation, `{maxUses: 5, inviter: {username: bob, groups: [team-leads]}}`)
			inv.SetNamespace(namespace(ctx))
			Expect(k8sClient.Create(ctx, inv)).To(Succeed())
			Expect(unstructured.SetNestedField(inv.Object, int64(3), "status", "uses")).To(Succeed())
			Expect(k8sClient.Status().Update(ctx, inv)).To(Succeed())
		})

		It("refuses lowering maxUses below the uses already made", func(ctx SpecContext) {
			Expect(unstructured.SetNestedField(inv.Object, int64(2), "spec", "maxUses")).To(Succeed())
			expectRejected(k8sClient.Update(ctx, inv), "spec.maxUses", "may not be lower than status.uses")
		})

		It("allows lowering maxUses down to the uses already made", func(ctx SpecContext) {
			Expect(unstructured.SetNestedField(inv.Object, int64(3), "spec", "maxUses")).To(Succeed())
			Expect(k8sClient.Update(ctx, inv)).To(Succeed())
		})

		It("refuses counting more uses than maxUses, whoever writes status", func(ctx SpecContext) {
			Expect(unstructured.SetNestedField(inv.Object, int64(6), "status", "uses")).To(Succeed())
			expectRejected(k8sClient.Status().Update(ctx, inv), "spec.maxUses", "may not be lower than status.uses")
		})

		It("refuses changing the inviter", func(ctx SpecContext) {
			Expect(unstructured.SetNestedField(inv.Object, "mallory", "spec", "inviter", "username")).To(Succeed())
			expectRejected(k8sClient.Update(ctx, inv), "spec", "inviter is immutable")
		})

		It("refuses removing the inviter", func(ctx SpecContext) {
			unstructured.RemoveNestedField(inv.Object, "spec", "inviter")
			expectRejected(k8sClient.Update(ctx, inv), "spec", "inviter is immutable")
		})

		It("refuses undoing a revocation", func(ctx SpecContext) {
			Expect(unstructured.SetNestedField(inv.Object, true, "spec", "revoked")).To(Succeed())
			Expect(k8sClient.Update(ctx, inv)).To(Succeed())
			Expect(unstructured.SetNestedField(inv.Object, false, "spec", "revoked")).To(Succeed())
			expectRejected(k8sClient.Update(ctx, inv), "spec", "revoked cannot be undone")
		})
	})
})

var _ = Describe("RoleGrantPolicy schema", func() {
	It("accepts a policy using every field", func(ctx SpecContext) {
		rgp := object(validPolicy, `
inviters:
  - {kind: Group, name: team-leads}
  - {kind: User, name: alice, apiGroup: rbac.authorization.k8s.io}
  - {kind: ServiceAccount, name: onboarding, namespace: platform}
namespaceSelector: {matchLabels: {tenant: team-a}}
grantableRoles: [{clusterRole: edit}, {role: deployer}]
allowClusterWide: true
limits:
  maxExpiresAfter: 168h
  maxUses: 10
  maxGrantDuration: 720h
  requireEmail: true
  allowedEmailDomains: [example.com]
  maxActiveInvitationsPerInviter: 20
  tokenTypes: [Link, Code]
  maxLifetime: 336h
grantableIDPGroups: [readers, writers]
allowReplace: true
rules:
  - {expression: "invitation.spec.maxUses <= 5 || 'platform' in inviter.groups", message: "only platform may create invitations with more than 5 uses"}
`)
		Expect(k8sClient.Create(ctx, rgp)).To(Succeed())
	})

	DescribeTable("rejects a bad policy, naming the field and the reason",
		func(ctx SpecContext, specYAML, field, why string) {
			expectRejected(k8sClient.Create(ctx, object(validPolicy, specYAML)), field, why)
		},
		Entry("no inviters", "inviters: null", "spec.inviters", "Required value"),
		Entry("unknown subject kind", "inviters: [{kind: Robot, name: r2}]", "spec.inviters[0].kind", "Unsupported value"),
		Entry("service account without namespace", "inviters: [{kind: ServiceAccount, name: sa}]", "spec.inviters[0]", "namespace is required for a ServiceAccount"),
		Entry("user with a namespace", "inviters: [{kind: User, name: u, namespace: x}]", "spec.inviters[0]", "not allowed for a User or Group"),
		Entry("empty subject name", `inviters: [{kind: User, name: ""}]`, "spec.inviters[0].name", "at least 1 chars"),
		Entry("no grantable roles", "grantableRoles: []", "spec.grantableRoles", "at least 1 items"),
		Entry("grantable role with both kinds", "grantableRoles: [{role: a, clusterRole: b}]", "spec.grantableRoles[0]", "exactly one of role or clusterRole"),
		Entry("limit maxUses zero", "limits: {maxUses: 0}", "spec.limits.maxUses", "greater than or equal to 1"),
		Entry("limit maxExpiresAfter zero", "limits: {maxExpiresAfter: 0s}", "spec.limits.maxExpiresAfter", "must be a positive duration"),
		Entry("limit maxGrantDuration not a duration", "limits: {maxGrantDuration: forever}", "spec.limits.maxGrantDuration", "should match"),
		Entry("email domains without requireEmail", "limits: {allowedEmailDomains: [example.com]}", "spec", "allowedEmailDomains needs limits.requireEmail"),
		Entry("email domain with an @", "limits: {requireEmail: true, allowedEmailDomains: ['@example.com']}", "spec.limits.allowedEmailDomains[0]", "should match"),
		Entry("unknown token type", "limits: {tokenTypes: [Magic]}", "spec.limits.tokenTypes[0]", "Unsupported value"),
		Entry("per-inviter quota zero", "limits: {maxActiveInvitationsPerInviter: 0}", "spec.limits.maxActiveInvitationsPerInviter", "greater than or equal to 1"),
		Entry("rule without expression", "rules: [{message: m}]", "spec.rules[0].expression", "Required value"),
		Entry("rule without message", "rules: [{expression: 'true'}]", "spec.rules[0].message", "Required value"),
		Entry("rule expression too long", "rules: [{expression: '"+strings.Repeat("a", 4097)+"', message: m}]", "spec.rules[0].expression", "Too long"),
		Entry("a service account named by its username", "inviters: [{kind: ServiceAccount, namespace: platform, name: 'system:serviceaccount:platform:onboarding'}]",
			"spec.inviters[0]", "not a username such as system:serviceaccount:platform:onboarding"),
		Entry("a grantable role name with a slash", "grantableRoles: [{clusterRole: 'a/b'}]", "spec.grantableRoles[0].clusterRole", "must be a role name RBAC can refer to"),
		Entry("an empty list of idp groups", "grantableIDPGroups: []", "spec.grantableIDPGroups", "at least 1 items"),
		Entry("an empty idp group", `grantableIDPGroups: [""]`, "spec.grantableIDPGroups[0]", "at least 1 chars"),
		Entry("maxLifetime zero", "limits: {maxLifetime: 0s}", "spec.limits.maxLifetime", "must be a positive duration"),
		Entry("maxLifetime not a duration", "limits: {maxLifetime: forever}", "spec.limits.maxLifetime", "should match"),
	)
})
