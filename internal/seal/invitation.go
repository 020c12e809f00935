package seal

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// Purposes of the seals on an Invitation. The version lets a future format coexist.
const (
	purposeTokenHash = "rolecall/token-hash/v1"
	purposeToken     = "rolecall/token/v1"
	purposeClaim     = "rolecall/claim/v1"
)

// TokenHashIndex indexes Invitations by status.tokenHash, the keyed hash of their current
// token: the redemption server finds an invitation by its token through it, and the
// controller makes sure no two invitations hold the same token. Token Secrets play no part
// in finding an invitation: anyone who may create Secrets can plant, label and point one at
// an invitation, but only the manager can compute a hash and a seal.
const TokenHashIndex = "status.tokenHash"

// TokenHashIndexValue is the index function for TokenHashIndex.
func TokenHashIndexValue(obj client.Object) []string {
	inv, ok := obj.(*invitesv1alpha1.Invitation)
	if !ok || inv.Status.TokenHash == "" {
		return nil
	}
	return []string{inv.Status.TokenHash}
}

// TokenHash is the keyed hash of a canonical token recorded in status.tokenHash. Without
// the key it neither reveals the token nor lets anyone test a guess against it.
func (s *Sealer) TokenHash(token string) string {
	return s.Sum(purposeTokenHash, token)
}

// SealToken signs the invitation's token record into status.tokenSeal, under its current
// resend annotation: the token's facts, or, with no token, what is left of its life
// (issuedAt). The controller calls it only for a record it produced itself: a token it just
// issued, or a record whose seal it verified before changing what spec derives from it.
func (s *Sealer) SealToken(inv *invitesv1alpha1.Invitation) {
	inv.Status.TokenSeal = s.Sum(purposeToken, tokenFields(inv, inv.Annotations[invitesv1alpha1.ResendAnnotation])...)
}

// TokenSealed says the invitation's current token is the one rolecall sealed. The seal
// covers the invitation's UID, so facts copied from another invitation fail; its expiry,
// so a status edit cannot extend it; and the resend annotation, so a token stops working
// the moment a resend is asked for, and an old token restored with an old status does not
// come back after one.
func (s *Sealer) TokenSealed(inv *invitesv1alpha1.Invitation) bool {
	return inv.Status.TokenHash != "" && s.RecordSealedUnder(inv, inv.Annotations[invitesv1alpha1.ResendAnnotation])
}

// RecordSealedUnder says the token record in status is one rolecall sealed while the resend
// annotation had the given value. With the annotation's current value, the record is the
// invitation's own; with the value before a resend, it proves that resend changed the
// annotation since rolecall last issued, and so that a new life may start.
func (s *Sealer) RecordSealedUnder(inv *invitesv1alpha1.Invitation, resend string) bool {
	return s.Verify(inv.Status.TokenSeal, purposeToken, tokenFields(inv, resend)...)
}

func tokenFields(inv *invitesv1alpha1.Invitation, resend string) []string {
	return []string{
		string(inv.UID), inv.Status.TokenID, inv.Status.TokenHash,
		timeField(inv.Status.IssuedAt), timeField(inv.Status.ExpiresAt), resend,
	}
}

// SealClaim signs a pending claim as the redemption server records it.
func (s *Sealer) SealClaim(inv *invitesv1alpha1.Invitation, p *invitesv1alpha1.PendingRedemption) {
	p.Seal = s.Sum(purposeClaim, claimFields(inv, *p)...)
}

// ClaimSealed says the redemption server recorded this claim on this invitation: an entry
// written into status by anyone else is not a claim.
func (s *Sealer) ClaimSealed(inv *invitesv1alpha1.Invitation, p invitesv1alpha1.PendingRedemption) bool {
	return s.Verify(p.Seal, purposeClaim, claimFields(inv, p)...)
}

func claimFields(inv *invitesv1alpha1.Invitation, p invitesv1alpha1.PendingRedemption) []string {
	return []string{string(inv.UID), p.User, timeField(&p.ClaimedAt)}
}

// timeField is a time as the API server stores it (whole seconds), so a seal made before a
// write still verifies after the round trip.
func timeField(t *metav1.Time) string {
	if t == nil || t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}
