package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	invitesv1alpha1 "github.com/rolecall/rolecall/api/v1alpha1"
)

// failoverResult is how long a follower took to take over from a leader stopped by one
// signal, over several hand-overs, each list sorted.
type failoverResult struct {
	Signal string
	// Lease runs from the signal until the follower holds the Lease; Active until an
	// invitation created right after the signal is Active, issued by the new leader.
	Lease, Active []time.Duration
}

const (
	failoverRepeats = 3
	// leaseName is the manager's leader election Lease, in its --namespace (default here).
	leaseName = "rolecall.invites.rolecall.dev"
)

// errOldLeader: the stopping leader still issued the invitation, so the hand-over timed
// nothing. Only a SIGTERMed leader can, in the moment before its controllers stop.
var errOldLeader = errors.New("the stopped leader issued the invitation itself")

func measureFailover(ctx context.Context, cp *controlPlane, o options) ([]failoverResult, error) {
	ns, err := createNamespace(ctx, cp, "failover")
	if err != nil {
		return nil, err
	}
	var results []failoverResult
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM} {
		r := failoverResult{Signal: signalName(sig)}
		for attempt := 0; len(r.Lease) < failoverRepeats; attempt++ {
			lease, active, err := failOver(ctx, cp, o.managerPath, ns, sig, fmt.Sprintf("%s-%d", strings.ToLower(r.Signal), attempt))
			if errors.Is(err, errOldLeader) && attempt < 2*failoverRepeats {
				continue
			}
			if err != nil {
				return nil, fmt.Errorf("failover after %s: %w", r.Signal, err)
			}
			r.Lease, r.Active = append(r.Lease, lease), append(r.Active, active)
			fmt.Printf("        %-7s follower holds the Lease after %v; new invitation Active after %v\n", r.Signal, lease.Round(time.Millisecond), active.Round(time.Millisecond))
		}
		slices.Sort(r.Lease)
		slices.Sort(r.Active)
		results = append(results, r)
	}
	return results, nil
}

// failOver runs a leader and a follower, stops the leader with sig, creates an invitation
// at once, and times the follower taking the Lease and issuing it.
func failOver(ctx context.Context, cp *controlPlane, path, ns string, sig syscall.Signal, name string) (lease, active time.Duration, err error) {
	// The API server calls one webhook address, the follower's, so invitations are admitted
	// while the leader is gone, as through a Service in front of both. The leader, started
	// alone, listens where nobody calls.
	leader, err := startReplica(ctx, cp, path, freePort())
	if err != nil {
		return 0, 0, err
	}
	defer leader.stop()
	old, err := waitHolder(ctx, cp, "")
	if err != nil {
		return 0, 0, err
	}
	follower, err := startReplica(ctx, cp, path, cp.env.WebhookInstallOptions.LocalServingPort)
	if err != nil {
		return 0, 0, err
	}
	defer follower.stop()

	// The signal lands at a random point of the follower's retry cycle (2 s plus up to 2.4 s
	// of jitter): right after its start, it would land at the same point every time.
	time.Sleep(rand.N(4400 * time.Millisecond)) //nolint:gosec // a phase, not a secret
	start := time.Now()
	if err := leader.cmd.Process.Signal(sig); err != nil {
		return 0, 0, err
	}
	inv := newInvitation(ns, name, 1)
	if err := cp.client.Create(ctx, inv); err != nil {
		return 0, 0, err
	}
	return timeHandOver(ctx, cp, inv, old, start)
}

// timeHandOver polls the Lease and the invitation until a new holder has the one and the
// other is Active.
func timeHandOver(ctx context.Context, cp *controlPlane, inv *invitesv1alpha1.Invitation, old string, start time.Time) (lease, active time.Duration, err error) {
	for lease == 0 || active == 0 {
		if time.Since(start) > 2*time.Minute {
			return 0, 0, fmt.Errorf("no hand-over within 2 minutes (Lease after %v, Active after %v)", lease, active)
		}
		if lease, err = sinceIf(start, lease, func() (bool, error) {
			holder, err := leaseHolder(ctx, cp)
			return holder != "" && holder != old, err
		}); err != nil {
			return 0, 0, err
		}
		if active, err = sinceIf(start, active, func() (bool, error) {
			err := cp.client.Get(ctx, client.ObjectKeyFromObject(inv), inv)
			return inv.Status.Phase == invitesv1alpha1.PhaseActive, err
		}); err != nil {
			return 0, 0, err
		}
		time.Sleep(10 * time.Millisecond)
	}
	if active < lease {
		return 0, 0, errOldLeader
	}
	return lease, active, nil
}

// sinceIf keeps a figure once it is measured; until then it is the time since start when
// done says so, else 0.
func sinceIf(start time.Time, measured time.Duration, done func() (bool, error)) (time.Duration, error) {
	if measured != 0 {
		return measured, nil
	}
	ok, err := done()
	if err != nil || !ok {
		return 0, err
	}
	return time.Since(start), nil
}

// startReplica runs the manager binary with leader election, its webhook server on
// webhookPort, and waits until it is ready (caches synced, webhook server serving).
func startReplica(ctx context.Context, cp *controlPlane, path string, webhookPort int) (*managerProcess, error) {
	return startManagerProcess(ctx, cp, path, "--leader-elect", fmt.Sprintf("--webhook-port=%d", webhookPort))
}

// waitHolder waits until the Lease names a holder other than notThis, and returns it.
func waitHolder(ctx context.Context, cp *controlPlane, notThis string) (string, error) {
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		holder, err := leaseHolder(ctx, cp)
		if err != nil {
			return "", err
		}
		if holder != "" && holder != notThis {
			return holder, nil
		}
	}
	return "", errors.New("nobody took the Lease within a minute")
}

// leaseHolder is who the Lease names as leader, or "" when nobody holds it.
func leaseHolder(ctx context.Context, cp *controlPlane) (string, error) {
	lease := &coordinationv1.Lease{}
	err := cp.client.Get(ctx, client.ObjectKey{Namespace: "default", Name: leaseName}, lease)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	return ptr.Deref(lease.Spec.HolderIdentity, ""), err
}

func signalName(sig syscall.Signal) string {
	if sig == syscall.SIGKILL {
		return "SIGKILL"
	}
	return "SIGTERM"
}

// median of a sorted list.
func median(sorted []time.Duration) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[len(sorted)/2]
}

func (r *report) writeFailover(w func(string, ...any)) {
	if len(r.Failover) == 0 {
		return
	}
	w("")
	w("## Leader failover (two manager processes)")
	w("")
	w("Two manager binaries with `--leader-elect` and controller-runtime's default timing (lease duration 15 s, renew deadline 10 s, retry period 2 s). The leader is stopped, and an invitation is created at once (the follower's webhook admits it). Times run from the signal until the follower holds the Lease, and until the new invitation is Active; %d hand-overs each, min / median / max.", failoverRepeats)
	w("")
	w("| Leader stopped by | Follower holds the Lease | New invitation Active |")
	w("| --- | ---: | ---: |")
	for _, x := range r.Failover {
		w("| %s | %s | %s |", x.Signal, spread(x.Lease), spread(x.Active))
	}
	w("")
	w("What limits it is that timing, not the machine. The follower tries for the Lease every retry period plus a random jitter of up to 1.2 times it (2 to 4.4 s); the leader renews every 2 s. A killed leader is waited out: the follower takes the Lease at its first try once 15 s (the lease duration) have passed since it last saw a renewal, which is 13 to 24 s after the kill depending on where in those cycles it falls. The renew deadline (10 s) only bounds how long a leader that cannot reach the API server goes on acting as one. SIGTERM is a hand-over: the leader stops its controllers and servers, releases the Lease (`LeaderElectionReleaseOnCancel`) and the follower takes it at its next try, within 4.4 s. The signal is sent at a random point of the follower's cycle. Once leading, the follower's caches are already synced, so the waiting invitation is issued as fast as on a running leader: the difference between the two columns. Redemptions wait for none of this: every replica serves them.")
}

// spread is min / median / max of a sorted list, in seconds.
func spread(sorted []time.Duration) string {
	if len(sorted) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f s", sorted[0].Seconds(), median(sorted).Seconds(), sorted[len(sorted)-1].Seconds())
}
