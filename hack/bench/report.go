package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report is everything one run measured.
type report struct {
	Started, Finished time.Time
	Options           options
	Raw               rawResult
	Redemption        []redemptionResult
	Issuance          []issuanceResult
	Expiry            expiryResult
	Failover          []failoverResult
}

func (r *report) write(path string) error {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	w("# Benchmarks")
	w("")
	w("Written by `make bench` (`go run ./hack/bench`) on %s; the run took %v.", r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Finished.Sub(r.Started).Round(time.Second))
	w("Every figure is measured against the same kube-apiserver and etcd (envtest, v1.37.2, etcd v3.6.6) in the same run, so the ratios hold on other machines even where the absolute numbers do not.")
	w("")
	w("Machine: %s", machine())
	w("")
	w("## The ceiling: raw API server writes")
	w("")
	w("Creates are ConfigMaps; status updates are Invitation status writes under a resourceVersion precondition (what a redemption's claim is), each client on its own object. %d writes per cell.", r.Options.writes)
	w("")
	w("| Concurrency | Creates/s | p50 | p99 | Status updates/s | p50 | p99 |")
	w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for i, c := range r.Raw.Creates {
		s := r.Raw.StatusUpdates[i]
		w("| %d | %.0f | %v | %v | %.0f | %v | %v |", c.Concurrency, c.rate(), ms(c.P50), ms(c.P99), s.rate(), ms(s.P50), ms(s.P99))
	}
	r.writeRedemptions(w)
	r.writeIssuance(w)
	r.writeFailover(w)
	w("")
	for _, line := range limitsText {
		w("%s", line)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644) //nolint:gosec // a document for the repository
}

func (r *report) writeRedemptions(w func(string, ...any)) {
	w("")
	w("## Redemptions")
	w("")
	w("%d redemptions per cell, each by a new person, through the JSON API on loopback. Identity is not measured here (a credential is checked locally for an ID token, or with one TokenReview, a read). Writes per redemption are the API server's own count of writes during the cell (the claim, the binding, the controller's status refresh, Events, and the SubjectAccessReviews of the policy re-check, which it counts as writes), divided by the redemptions. The ceiling is the raw status-update rate at the same concurrency divided by the writes a redemption needs. Target: at least 0.8 of the ceiling; p99 under 50 ms at concurrency 8.", r.Options.redemptions)
	w("")
	w("| Scenario | Replicas | Concurrency | Redemptions/s | p50 | p95 | p99 | Writes/redemption | Ceiling/s | Ratio |")
	w("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, x := range r.Redemption {
		ceiling := r.Raw.statusRate(x.Concurrency) / x.WritesPerRedemption
		w("| %s | %d | %d | %.0f | %v | %v | %v | %.2f | %.0f | %.2f |", x.Scenario, x.Replicas, x.Concurrency, x.rate(), ms(x.P50), ms(x.P95), ms(x.P99), x.WritesPerRedemption, ceiling, x.rate()/ceiling)
	}
}

func (r *report) writeIssuance(w func(string, ...any)) {
	if len(r.Issuance) == 0 {
		return
	}
	w("")
	w("## Issuance and memory (the manager binary)")
	w("")
	w("Invitations applied through the admission webhook at the highest concurrency, timed until every one is Active (token Secret written, status set). The raw equivalent is the time the API server needs for the same number of writes (its own count during the step) at its raw create rate. Target: issuance at least 0.8 of raw; manager RSS under 150 MiB at 10k invitations. The manager caches every invitation in the cluster (with its token Secret), including those the redemption step left, so memory is shown against that count.")
	w("")
	w("| Issued (total) | Added | Time to all Active | Writes | Raw equivalent | Ratio | Invitations cached | Manager RSS | Go heap in use |")
	w("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
	for _, x := range r.Issuance {
		w("| %d | %d | %v | %.0f | %v | %.2f | %d | %.0f MiB | %.0f MiB |", x.Total, x.Added, x.Elapsed.Round(time.Millisecond), x.Writes, x.RawEquivalent.Round(time.Millisecond),
			x.RawEquivalent.Seconds()/x.Elapsed.Seconds(), x.InCluster, x.RSSBytes/(1<<20), x.Heap/(1<<20))
	}
	w("")
	w("## Expiry lag")
	w("")
	w("%d invitations issued together with `expiresAfter: 30s`; lag is when the phase was seen Expired minus `status.expiresAt`. Target: p99 under 1 s.", r.Expiry.Count)
	w("")
	w("| Invitations | p50 | p99 | max |")
	w("| ---: | ---: | ---: | ---: |")
	w("| %d | %v | %v | %v |", r.Expiry.Count, ms(r.Expiry.P50), ms(r.Expiry.P99), ms(r.Expiry.Max))
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000) }

func machine() string {
	cpu := "unknown CPU"
	if raw, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if name, ok := strings.CutPrefix(line, "model name\t: "); ok {
				cpu = name
				break
			}
		}
	}
	mem := ""
	if out, err := exec.CommandContext(context.Background(), "free", "-g").Output(); err == nil {
		if fields := strings.Fields(strings.Split(string(out), "\n")[1]); len(fields) > 1 {
			mem = fields[1] + " GiB memory, "
		}
	}
	return fmt.Sprintf("%d cores (%s), %s%s %s/%s", runtime.NumCPU(), cpu, mem, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// limitsText says what bounds each figure on the machine this runs on.
var limitsText = []string{
	"## What limits it",
	"",
	"- **One machine, two cores.** kube-apiserver, etcd, the manager and the load generator share them; during a redemption flood kube-apiserver alone takes one core. The raw baseline runs with nothing else busy, so every ratio includes the cost of rolecall's own reads, watches and webhooks on the same cores.",
	"- **Claims on one invitation are grouped, not parallel.** Each write to an invitation is a status update under a resourceVersion precondition, so one invitation takes one write per round trip. Within a replica, each write carries everyone who arrived while the previous one was in flight (group commit), so the \"one invitation\" rows rise with concurrency instead of flattening; across replicas the groups still conflict and retry. What remains per person is the binding and the answer.",
	"- **Issuance** is measured against ConfigMap creates, which pass no admission webhook, no CEL validation and no SubjectAccessReview. An invitation costs about 4 writes (create, status, token Secret, the Issued Event) plus the webhook call and its SubjectAccessReviews; `--invitation-workers` (default 4) bounds the controller's parallelism.",
	"- **Expiry** of 1000 invitations at once is about 2000 writes (status and an Expired Event each): at this machine's write rate that alone takes about 2 s.",
	"- **Memory** is the informer cache: every Invitation and its token Secret (managedFields are dropped), the bindings rolecall made, and the indexes over them; it grows linearly with the invitations in the cluster. client-go's event broadcaster also keeps every Event it sent for 6 to 12 minutes (to merge repeats into series), so right after a burst of issuance the heap holds one Event per new invitation; that part goes once the burst is over. RSS follows the Go heap with the collector's headroom (GOGC=100); the Deployment sets GOMEMLIMIT from the container's memory limit.",
}
