// Package metrics defines rolecall's Prometheus metrics. They are registered with
// controller-runtime's registry, so the manager's metrics endpoint serves them next to the
// controllers' own.
package metrics

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

var (
	// Redemptions counts redemption attempts by result: "redeemed", "already_redeemed", or
	// the error code the client received ("expired", "email_mismatch", "rate_limited", ...).
	Redemptions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolecall_redemptions_total",
		Help: "Redemption attempts by result (redeemed, already_redeemed, or the error code answered).",
	}, []string{"result"})

	// RedemptionDuration is how long a redemption took to answer, by result.
	RedemptionDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "rolecall_redemption_duration_seconds",
		Help:    "Time to answer a redemption, from request to response, by result.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"result"})

	// Deliveries counts delivery attempts by channel (email, webhook) and result (sent,
	// retrying, failed), and deliveries the delivery limits hold back (throttled).
	Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolecall_deliveries_total",
		Help: "Delivery attempts by channel (email, webhook) and result (sent, retrying, failed), and holds by the delivery limits (throttled).",
	}, []string{"channel", "result"})

	// PolicyDenials counts invitations refused by policy, by where: admission (creating or
	// changing an invitation), redemption, or the controller (an invitation becomes Denied).
	PolicyDenials = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolecall_policy_denials_total",
		Help: "Invitations refused by policy, by stage (admission, redemption, controller).",
	}, []string{"stage"})

	// IDPHookCalls counts calls to the identity provider hook by action (add, remove) and
	// result (ok, retrying, failed).
	IDPHookCalls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "rolecall_idp_hook_calls_total",
		Help: "Identity provider hook calls by action (add, remove) and result (ok, retrying, failed).",
	}, []string{"action", "result"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(Redemptions, RedemptionDuration, Deliveries, PolicyDenials, IDPHookCalls)
}

// Phases lists the phases the invitation gauge reports, so that a phase with no
// invitations reads 0 rather than disappearing.
var phases = []invitesv1alpha1.InvitationPhase{
	invitesv1alpha1.PhasePending, invitesv1alpha1.PhaseActive, invitesv1alpha1.PhaseExhausted,
	invitesv1alpha1.PhaseExpired, invitesv1alpha1.PhaseRevoked, invitesv1alpha1.PhaseDeclined,
	invitesv1alpha1.PhaseDenied,
}

var invitationsDesc = prometheus.NewDesc("rolecall_invitations",
	"Invitations by phase, counted from the manager's cache when scraped.", []string{"phase"}, nil)

// InvitationCollector reports rolecall_invitations{phase} from the cache at scrape time: the
// count is always exact, and nothing has to be updated on every change.
type InvitationCollector struct {
	Reader client.Reader
}

// RegisterInvitations registers the invitation gauge, reading from reader (the cache).
func RegisterInvitations(reader client.Reader) error {
	return ctrlmetrics.Registry.Register(&InvitationCollector{Reader: reader})
}

// Describe implements prometheus.Collector.
func (c *InvitationCollector) Describe(ch chan<- *prometheus.Desc) { ch <- invitationsDesc }

// Collect implements prometheus.Collector.
func (c *InvitationCollector) Collect(ch chan<- prometheus.Metric) {
	var list invitesv1alpha1.InvitationList
	// The cache answers from memory; a list that fails (cache not started) reports nothing.
	if err := c.Reader.List(context.Background(), &list, client.UnsafeDisableDeepCopy); err != nil {
		return
	}
	counts := map[invitesv1alpha1.InvitationPhase]int{}
	for i := range list.Items {
		phase := list.Items[i].Status.Phase
		if phase == "" {
			phase = invitesv1alpha1.PhasePending
		}
		counts[phase]++
	}
	for _, phase := range phases {
		ch <- prometheus.MustNewConstMetric(invitationsDesc, prometheus.GaugeValue, float64(counts[phase]), string(phase))
	}
}
