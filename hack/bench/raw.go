package main

import (
	"context"
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	ctrl "sigs.k8s.io/controller-runtime"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
	"github.com/rolecall/rolecall/internal/manager"
)

// rawResult is the API server's ceiling: plain creates, and status updates of Invitations
// under a resourceVersion precondition (what a redemption's claim is).
type rawResult struct {
	Creates       []stats
	StatusUpdates []stats
}

func (r rawResult) statusRate(concurrency int) float64 {
	for _, s := range r.StatusUpdates {
		if s.Concurrency == concurrency {
			return s.rate()
		}
	}
	return 0
}

func (r rawResult) createRate(concurrency int) float64 {
	for _, s := range r.Creates {
		if s.Concurrency == concurrency {
			return s.rate()
		}
	}
	return 0
}

func measureRaw(ctx context.Context, cp *controlPlane, writes int, concurrencies []int) (rawResult, error) {
	var r rawResult
	// Invitations are admitted by the webhook; only the webhook runs, so nothing else
	// writes their status while the baseline is measured.
	stop, err := startWebhooksOnly(ctx, cp)
	if err != nil {
		return r, err
	}
	defer stop()
	ns, err := createNamespace(ctx, cp, "raw")
	if err != nil {
		return r, err
	}
	for _, c := range concurrencies {
		s, err := load(ctx, writes, c, func(ctx context.Context, _, i int) error {
			return cp.client.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("c%d-%d", c, i), Namespace: ns},
				Data:       map[string]string{"n": strconv.Itoa(i)},
			})
		})
		if err != nil {
			return r, fmt.Errorf("creates at concurrency %d: %w", c, err)
		}
		r.Creates = append(r.Creates, s)
		fmt.Printf("        creates        c=%-3d %8.0f/s  p50 %v  p99 %v\n", c, s.rate(), s.P50, s.P99)

		targets, err := createInvitations(ctx, cp, ns, fmt.Sprintf("raw-c%d", c), c)
		if err != nil {
			return r, err
		}
		s, err = load(ctx, writes, c, func(ctx context.Context, worker, i int) error {
			inv := targets[worker]
			inv.Status.ObservedResend = strconv.Itoa(i)
			return cp.client.Status().Update(ctx, inv)
		})
		if err != nil {
			return r, fmt.Errorf("status updates at concurrency %d: %w", c, err)
		}
		r.StatusUpdates = append(r.StatusUpdates, s)
		fmt.Printf("        status updates c=%-3d %8.0f/s  p50 %v  p99 %v\n", c, s.rate(), s.P50, s.P99)
	}
	return r, nil
}

// startWebhooksOnly runs the admission webhooks in this process, and returns how to stop
// them (the port is then free for the next manager).
func startWebhooksOnly(ctx context.Context, cp *controlPlane) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	mgr, err := ctrl.NewManager(cp.admin, withoutMetrics(cp.webhookOptions()))
	if err != nil {
		cancel()
		return nil, err
	}
	if err := manager.Setup(ctx, mgr, benchConfig(), manager.Parts{Webhooks: true}); err != nil {
		cancel()
		return nil, err
	}
	done := make(chan struct{})
	go func() { _ = mgr.Start(ctx); close(done) }()
	hook := cp.env.WebhookInstallOptions
	if err := waitTLS(ctx, fmt.Sprintf("%s:%d", hook.LocalServingHost, hook.LocalServingPort)); err != nil {
		cancel()
		return nil, err
	}
	return func() { cancel(); <-done }, nil
}

func createNamespace(ctx context.Context, cp *controlPlane, prefix string) (string, error) {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	err := cp.client.Create(ctx, ns)
	return ns.Name, err
}

// createInvitations creates n invitations offering the built-in "view" role.
func createInvitations(ctx context.Context, cp *controlPlane, ns, prefix string, n int) ([]*invitesv1alpha1.Invitation, error) {
	out := make([]*invitesv1alpha1.Invitation, n)
	for i := range out {
		out[i] = newInvitation(ns, fmt.Sprintf("%s-%d", prefix, i), 1)
		if err := cp.client.Create(ctx, out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func newInvitation(ns, name string, maxUses int32) *invitesv1alpha1.Invitation {
	return &invitesv1alpha1.Invitation{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       invitesv1alpha1.InvitationSpec{Grants: []invitesv1alpha1.Grant{{ClusterRole: "view"}}, MaxUses: maxUses},
	}
}
