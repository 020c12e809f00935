package delivery

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// Limits bound how often rolecall sends to one invitation and to one person, so that
// nobody can turn the company's mail sender (or chat system) against an address by asking
// for resend after resend, or by inviting the same address again and again.
type Limits struct {
	// Cooldown is the least time between two deliveries of one invitation.
	Cooldown time.Duration
	// PerInvitation is how many deliveries of one invitation (all its tokens) Window allows.
	PerInvitation int
	// PerRecipient is how many deliveries to one address, across invitations, Window allows.
	PerRecipient int
	// Window is the period PerInvitation and PerRecipient count over.
	Window time.Duration
}

// DefaultLimits let a person be invited to a few namespaces at once and a lost mail be
// resent, and hold back anything more.
var DefaultLimits = Limits{Cooldown: time.Minute, PerInvitation: 5, PerRecipient: 10, Window: time.Hour}

// MaxPerInvitation is the most PerInvitation may be: each invitation keeps that many
// delivery times in its status.
const MaxPerInvitation = 20

// Validate reports limits that would let everything through or nothing, naming the flag.
func (l Limits) Validate() error {
	switch {
	case l.Cooldown < 0:
		return fmt.Errorf("--delivery-cooldown must not be negative, got %s", l.Cooldown)
	case l.PerInvitation < 1 || l.PerInvitation > MaxPerInvitation:
		return fmt.Errorf("--delivery-max-per-invitation must be between 1 and %d, got %d", MaxPerInvitation, l.PerInvitation)
	case l.PerRecipient < 1:
		return fmt.Errorf("--delivery-max-per-recipient must be at least 1, got %d", l.PerRecipient)
	case l.Window <= 0:
		return fmt.Errorf("the delivery window must be positive, got %s", l.Window)
	}
	return nil
}

// Hold is why and until when a delivery must wait. The zero Hold lets it go now.
type Hold struct {
	// Until is when the delivery may go out.
	Until time.Time
	// Reason says which limit holds it, in words for the invitation's status.
	Reason string
}

// NextAllowed says when the next delivery of an invitation may go out, given when that
// invitation was delivered before (any of its tokens) and when its recipient was sent
// anything (any invitation, this one included). Times may come in any order.
func (l Limits) NextAllowed(now time.Time, invitation, recipient []time.Time) Hold {
	var hold Hold
	later := func(until time.Time, reason string) {
		if until.After(now) && until.After(hold.Until) {
			hold = Hold{Until: until, Reason: reason}
		}
	}
	if len(invitation) > 0 {
		later(slices.MaxFunc(invitation, time.Time.Compare).Add(l.Cooldown),
			fmt.Sprintf("at most one delivery of an invitation every %s", l.Cooldown))
	}
	later(l.windowFreesAt(now, invitation, l.PerInvitation),
		fmt.Sprintf("at most %d deliveries of an invitation per %s", l.PerInvitation, l.Window))
	later(l.windowFreesAt(now, recipient, l.PerRecipient),
		fmt.Sprintf("at most %d deliveries to one address per %s", l.PerRecipient, l.Window))
	return hold
}

// windowFreesAt is when fewer than limit of times fall in the window again: when the
// limit-th most recent leaves it. The zero time when there is room now.
func (l Limits) windowFreesAt(now time.Time, times []time.Time, limit int) time.Time {
	recent := InWindow(now, times, l.Window)
	if len(recent) < limit {
		return time.Time{}
	}
	slices.SortFunc(recent, func(a, b time.Time) int { return b.Compare(a) })
	return recent[limit-1].Add(l.Window)
}

// InWindow keeps the times less than window before now.
func InWindow(now time.Time, times []time.Time, window time.Duration) []time.Time {
	out := make([]time.Time, 0, len(times))
	for _, t := range times {
		if now.Sub(t) < window {
			out = append(out, t)
		}
	}
	return out
}

// RecipientKey is the address that deliveries to one person are counted under: lower case,
// without a "+tag" in the local part, which most mail systems deliver to the same inbox.
// Two addresses that share a key are counted together: a bound on deliveries may only be
// stricter for it, never looser.
func RecipientKey(address string) string {
	local, domain, ok := strings.Cut(strings.ToLower(strings.TrimSpace(address)), "@")
	if !ok {
		return strings.ToLower(address)
	}
	local, _, _ = strings.Cut(local, "+")
	return local + "@" + domain
}

// Ledger remembers the deliveries this process made, by invitation and by recipient, for
// the length of the window. It completes what invitations' status records: status outlives
// a restart, but whoever may write an invitation's status can erase its record, and a
// deleted invitation takes its record with it. Neither erases what the ledger saw.
type Ledger struct {
	mu   sync.Mutex
	sent map[string][]Sent
}

// Sent is one delivery: of which invitation (its UID), when.
type Sent struct {
	Invitation string
	At         time.Time
}

// Record notes a delivery of invitation to recipient (a RecipientKey; empty when the
// invitation names nobody) and forgets what has left the window.
func (l *Ledger) Record(invitation, recipient string, at time.Time, window time.Duration) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sent == nil {
		l.sent = map[string][]Sent{}
	}
	for key, list := range l.sent {
		list = slices.DeleteFunc(list, func(s Sent) bool { return at.Sub(s.At) >= window })
		if len(list) == 0 {
			delete(l.sent, key)
		} else {
			l.sent[key] = list
		}
	}
	entry := Sent{Invitation: invitation, At: at}
	l.sent["invitation/"+invitation] = append(l.sent["invitation/"+invitation], entry)
	if recipient != "" {
		l.sent["recipient/"+recipient] = append(l.sent["recipient/"+recipient], entry)
	}
}

// ByInvitation lists the remembered deliveries of invitation.
func (l *Ledger) ByInvitation(invitation string) []Sent { return l.list("invitation/" + invitation) }

// ByRecipient lists the remembered deliveries to recipient (a RecipientKey).
func (l *Ledger) ByRecipient(recipient string) []Sent { return l.list("recipient/" + recipient) }

func (l *Ledger) list(key string) []Sent {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent[key])
}

// Times merges deliveries from several records, counting each (invitation, second) once:
// status and the ledger often both hold the same delivery.
func Times(records ...[]Sent) []time.Time {
	type key struct {
		invitation string
		second     int64
	}
	seen := map[key]bool{}
	var out []time.Time
	for _, record := range records {
		for _, s := range record {
			k := key{s.Invitation, s.At.Unix()}
			if !seen[k] {
				seen[k] = true
				out = append(out, s.At)
			}
		}
	}
	return out
}
