package devidp

import "context"

// LoginWithNonce is Login with a chosen nonce, so that tests can see it come back.
func (s *Server) LoginWithNonce(ctx context.Context, clientID, clientSecret, redirectURI, username, password, nonce string) (string, error) {
	return s.login(ctx, clientID, clientSecret, redirectURI, username, password, nonce)
}
