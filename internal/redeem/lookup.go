package redeem

import (
	"context"

	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/seal"
	"github.com/rolecall/rolecall/internal/token"
)

// lookup finds the invitation whose current token this is. The token's keyed hash selects
// the candidates; only an invitation whose token seal verifies counts, so a hash copied
// into another invitation's status, or a rotated token restored by editing status, finds
// nothing. Two invitations sealed with the same token would make the answer ambiguous: the
// controller never issues a token another invitation holds, and if it happened anyway the
// token redeems neither.
func (s *Server) lookup(ctx context.Context, submitted string) (*invitesv1alpha1.Invitation, error) {
	t, err := token.Parse(submitted)
	if err != nil {
		return nil, errUnknownToken
	}
	var list invitesv1alpha1.InvitationList
	if err := s.Reader.List(ctx, &list, client.MatchingFields{seal.TokenHashIndex: s.Sealer.TokenHash(t.Value)}); err != nil {
		return nil, err
	}
	var found *invitesv1alpha1.Invitation
	for i := range list.Items {
		inv := &list.Items[i]
		if !s.Sealer.TokenSealed(inv) {
			continue
		}
		if found != nil {
			s.Log.Info("a token is sealed into two invitations; it redeems neither",
				"invitation", client.ObjectKeyFromObject(found).String(), "other", client.ObjectKeyFromObject(inv).String())
			return nil, errUnknownToken
		}
		found = inv
	}
	if found == nil {
		return nil, errUnknownToken
	}
	return found.DeepCopy(), nil
}
