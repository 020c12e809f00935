package delivery_test

import (
	"context"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"

	"github.com/rolecall/rolecall/internal/testing/mailpit"
)

func TestDelivery(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "Delivery Suite")
}

// startMailpit runs a real SMTP server for one spec.
func startMailpit(ctx context.Context, extra ...string) *mailpit.Server {
	GinkgoHelper()
	server, err := mailpit.Start(context.WithoutCancel(ctx), mailpit.Options{Dir: GinkgoT().TempDir(), Extra: extra})
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(server.Stop)
	return server
}

// onlyMessage waits for exactly one message and reads it.
func onlyMessage(ctx context.Context, server *mailpit.Server) mailpit.Message {
	GinkgoHelper()
	var list []mailpit.Summary
	Eventually(func(g Gomega) {
		var err error
		list, err = server.Messages(ctx)
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(list).To(HaveLen(1))
	}).WithTimeout(10 * time.Second).Should(Succeed())
	msg, err := server.Message(ctx, list[0].ID)
	Expect(err).NotTo(HaveOccurred())
	return msg
}
