package seal_test

import (
	"bytes"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/seal"
)

func sealer(t *testing.T, b byte) *seal.Sealer {
	t.Helper()
	s, err := seal.New(bytes.Repeat([]byte{b}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestNewRefusesAKeyOfTheWrongSize(t *testing.T) {
	if _, err := seal.New(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte key was accepted")
	}
}

func TestSumSeparatesPurposesFieldsAndKeys(t *testing.T) {
	s := sealer(t, 1)
	base := s.Sum("purpose", "ab", "c")
	for name, other := range map[string]string{
		"another purpose":        s.Sum("other", "ab", "c"),
		"fields split elsewhere": s.Sum("purpose", "a", "bc"),
		"one field fewer":        s.Sum("purpose", "ab"),
		"another key":            sealer(t, 2).Sum("purpose", "ab", "c"),
	} {
		if other == base {
			t.Errorf("%s: same seal", name)
		}
	}
	if !s.Verify(base, "purpose", "ab", "c") {
		t.Error("a seal does not verify its own fields")
	}
	if s.Verify("", "purpose") {
		t.Error("an empty seal verified")
	}
}

func sealedInvitation(s *seal.Sealer) *invitesv1alpha1.Invitation {
	issued := metav1.NewTime(time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC))
	expires := metav1.NewTime(issued.Add(72 * time.Hour))
	inv := &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: "alice", Namespace: "team-a", UID: "uid-1",
			Annotations: map[string]string{invitesv1alpha1.ResendAnnotation: "1"}},
		Status: invitesv1alpha1.InvitationStatus{TokenID: "abcdefgh", IssuedAt: &issued, ExpiresAt: &expires},
	}
	inv.Status.TokenHash = s.TokenHash("abcdefgh.secret")
	s.SealToken(inv)
	return inv
}

// Every fact the token seal covers, changed by someone who may write status or metadata,
// breaks it.
func TestTokenSealBreaksOnEveryCoveredChange(t *testing.T) {
	s := sealer(t, 1)
	if !s.TokenSealed(sealedInvitation(s)) {
		t.Fatal("a freshly sealed invitation does not verify")
	}
	for name, edit := range map[string]func(*invitesv1alpha1.Invitation){
		"copied to another invitation": func(i *invitesv1alpha1.Invitation) { i.UID = "uid-2" },
		"expiry moved":                 func(i *invitesv1alpha1.Invitation) { i.Status.ExpiresAt.Time = i.Status.ExpiresAt.Add(time.Hour) },
		"issuedAt moved":               func(i *invitesv1alpha1.Invitation) { i.Status.IssuedAt.Time = i.Status.IssuedAt.Add(time.Hour) },
		"another token's hash":         func(i *invitesv1alpha1.Invitation) { i.Status.TokenHash = s.TokenHash("other") },
		"another token ID":             func(i *invitesv1alpha1.Invitation) { i.Status.TokenID = "zzzzzzzz" },
		"a resend asked for":           func(i *invitesv1alpha1.Invitation) { i.Annotations[invitesv1alpha1.ResendAnnotation] = "2" },
		"sealed under another key":     func(i *invitesv1alpha1.Invitation) { sealer(t, 2).SealToken(i) },
	} {
		inv := sealedInvitation(s)
		edit(inv)
		if s.TokenSealed(inv) {
			t.Errorf("%s: the seal still verifies", name)
		}
	}
}

func TestClaimSealBindsInvitationUserAndMoment(t *testing.T) {
	s := sealer(t, 1)
	inv := sealedInvitation(s)
	p := invitesv1alpha1.PendingRedemption{User: "oidc:alice", ClaimedAt: metav1.NewTime(time.Date(2026, 12, 1, 11, 0, 0, 0, time.UTC))}
	s.SealClaim(inv, &p)
	if !s.ClaimSealed(inv, p) {
		t.Fatal("a sealed claim does not verify")
	}
	other := p
	other.User = "oidc:mallory"
	if s.ClaimSealed(inv, other) {
		t.Error("a claim's seal verified for another user")
	}
	moved := p
	moved.ClaimedAt = metav1.NewTime(p.ClaimedAt.Add(time.Minute))
	if s.ClaimSealed(inv, moved) {
		t.Error("a claim's seal verified for another moment")
	}
	elsewhere := inv.DeepCopy()
	elsewhere.UID = "uid-2"
	if s.ClaimSealed(elsewhere, p) {
		t.Error("a claim's seal verified on another invitation")
	}
}
