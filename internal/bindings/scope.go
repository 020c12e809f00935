package bindings

import invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"

// ReplaceScopes says, in words for the invited person, where accepting an invitation with
// `upgrade: Replace` removes their earlier rolecall grants: the scopes ReplaceOthers clears,
// so that what the mail and the landing page promise is what redemption does.
func ReplaceScopes(inv *invitesv1alpha1.Invitation) []string {
	var out []string
	for _, s := range scopes(inv) {
		if s.namespace == "" {
			out = append(out, "the whole cluster (roles granted cluster-wide)")
		} else {
			out = append(out, "namespace "+string(s.namespace))
		}
	}
	return out
}
