package delivery_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/delivery"
)

var _ = Describe("Delivery limits", func() {
	now := time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)
	ago := func(minutes ...int) []time.Time {
		out := make([]time.Time, 0, len(minutes))
		for _, m := range minutes {
			out = append(out, now.Add(-time.Duration(m)*time.Minute))
		}
		return out
	}
	limits := delivery.Limits{Cooldown: time.Minute, PerInvitation: 3, PerRecipient: 5, Window: time.Hour}

	DescribeTable("NextAllowed",
		func(invitation, recipient []time.Time, until time.Time, reason string) {
			hold := limits.NextAllowed(now, invitation, recipient)
			Expect(hold.Until).To(BeTemporally("==", until))
			Expect(hold.Reason).To(ContainSubstring(reason))
		},
		Entry("the first delivery goes now", nil, nil, time.Time{}, ""),
		Entry("a delivery after the cooldown goes now", ago(2), ago(2), time.Time{}, ""),
		Entry("a resend within the cooldown waits for its end",
			ago(0), ago(0), now.Add(time.Minute), "at most one delivery of an invitation every 1m0s"),
		Entry("the invitation's hourly count waits until its oldest counted delivery is an hour old",
			ago(50, 20, 5), ago(50, 20, 5), now.Add(10*time.Minute), "at most 3 deliveries of an invitation per 1h0m0s"),
		Entry("deliveries older than the window do not count",
			ago(90, 61, 20, 5), ago(90, 61, 20, 5), time.Time{}, ""),
		Entry("the recipient's hourly count holds a new invitation to the same address",
			nil, ago(55, 40, 30, 10, 2), now.Add(5*time.Minute), "at most 5 deliveries to one address per 1h0m0s"),
		Entry("the latest of several holds wins",
			ago(0), ago(59, 40, 30, 10, 0), now.Add(time.Minute), "every 1m0s"),
		Entry("the order of times does not matter",
			ago(5, 50, 20), ago(20, 5, 50), now.Add(10*time.Minute), "per 1h0m0s"),
	)

	DescribeTable("RecipientKey counts one inbox once",
		func(address, key string) { Expect(delivery.RecipientKey(address)).To(Equal(key)) },
		Entry("case", "Alice@Example.COM", "alice@example.com"),
		Entry("a +tag", "alice+invite7@example.com", "alice@example.com"),
		Entry("surrounding space", " alice@example.com ", "alice@example.com"),
		Entry("other addresses stay apart", "alicia@example.com", "alicia@example.com"),
	)

	It("Validate names the flag of a limit that makes no sense", func() {
		bad := limits
		bad.PerInvitation = delivery.MaxPerInvitation + 1
		Expect(bad.Validate()).To(MatchError(ContainSubstring("--delivery-max-per-invitation")))
		bad = limits
		bad.PerRecipient = 0
		Expect(bad.Validate()).To(MatchError(ContainSubstring("--delivery-max-per-recipient")))
		Expect(delivery.DefaultLimits.Validate()).To(Succeed())
	})

	It("the ledger keeps what it saw for the window, by invitation and by recipient, and Times counts each delivery once", func() {
		var ledger delivery.Ledger
		ledger.Record("uid-1", "alice@example.com", now.Add(-2*time.Hour), time.Hour)
		ledger.Record("uid-1", "alice@example.com", now, time.Hour)
		ledger.Record("uid-2", "alice@example.com", now, time.Hour)
		Expect(ledger.ByInvitation("uid-1")).To(Equal([]delivery.Sent{{Invitation: "uid-1", At: now}}))
		Expect(ledger.ByRecipient("alice@example.com")).To(HaveLen(2))
		fromStatus := []delivery.Sent{{Invitation: "uid-1", At: now.Local()}}
		Expect(delivery.Times(fromStatus, ledger.ByRecipient("alice@example.com"))).To(HaveLen(2))
	})
})
