package devidp_test

import (
	"log/slog"
	"testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
)

func TestDevIDP(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "DevIDP Suite")
}

// The op package logs refused requests through the default logger, and some specs are
// refused on purpose.
var _ = BeforeSuite(func() {
	previous := slog.Default()
	slog.SetDefault(slog.New(slog.DiscardHandler))
	DeferCleanup(func() { slog.SetDefault(previous) })
})
