#!/usr/bin/env bash
# Runs every fuzz target in the module for a bounded time, one at a time, and prints one
# summary line per target. A failure leaves its input under the package's
# testdata/fuzz/<Target>/; commit it as a regression seed once the bug is fixed.
#
#   hack/fuzz.sh                      every target, FUZZTIME (default 20s) each
#   FUZZTIME=2m hack/fuzz.sh          longer
#   hack/fuzz.sh FuzzUnseal FuzzParse only these targets
#
# FUZZFLAGS adds flags to each `go test`, for example FUZZFLAGS='-parallel=4' or
# FUZZFLAGS='-fuzzminimizetime=10s' (Go minimizes each new input for up to 60s, which can
# stall a short run on large inputs). Plain `go test ./...` runs the seed corpora only, which
# is quick; this script fuzzes.
set -euo pipefail

FUZZTIME=${FUZZTIME:-20s}
FUZZFLAGS=${FUZZFLAGS:-}

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT

# "<package dir> <target>" for each `func FuzzX(f *testing.F)` in a test file.
targets=$(grep -rE --include='*_test.go' --exclude-dir=bin --exclude-dir=testdata --exclude-dir=.git \
	'^func Fuzz[A-Za-z0-9_]*\(f \*testing\.F\)' . |
	sed -E 's#^\./(.*)/[^/]+_test\.go:func (Fuzz[A-Za-z0-9_]*)\(.*#./\1 \2#' | sort -u)
if [ $# -gt 0 ]; then
	wanted=$(printf '%s\n' "$@")
	targets=$(awk 'NR == FNR { want[$0] = 1; next } ($2 in want)' <(echo "$wanted") <(echo "$targets"))
fi
if [ -z "$targets" ]; then
	echo "no fuzz targets found${*:+ named $*}" >&2
	exit 1
fi

failed=0
summary=()
while read -r pkg target; do
	log="$logs/$target.log"
	echo "=== $target ($pkg, $FUZZTIME)"
	start=$SECONDS
	# shellcheck disable=SC2086 # FUZZFLAGS is a list of flags
	if go test -run='^$' -fuzz="^${target}\$" -fuzztime="$FUZZTIME" $FUZZFLAGS "$pkg" </dev/null >"$log" 2>&1; then
		result=PASS
	else
		result=FAIL
		failed=1
	fi
	# From the last progress line, "fuzz: elapsed: 20s, execs: 123456 (6172/sec), new
	# interesting: 3 (total: 40)": executions, their average rate and the corpus gained.
	progress=$(grep -E '^fuzz: elapsed: [0-9]+s, execs: ' "$log" | tail -n 1 |
		sed -E 's/^fuzz: elapsed: ([0-9]+)s, execs: ([0-9]+) .*new interesting: ([0-9]+) \(total: ([0-9]+)\).*/\1 \2 \3 \4/' || true)
	if [ -n "$progress" ]; then
		read -r elapsed execs new total <<<"$progress"
		progress="$execs execs in ${elapsed}s ($((execs / (elapsed > 0 ? elapsed : 1)))/s), $new new inputs (corpus $total)"
	fi
	line=$(printf '%-4s %-22s %-20s %4ss  %s' "$result" "$target" "$pkg" "$((SECONDS - start))" "${progress:-still gathering baseline coverage: raise FUZZTIME}")
	if [ "$result" = FAIL ]; then
		input=$(grep -oE 'testdata/fuzz/[^ ]+' "$log" | tail -n 1 || true)
		line="$line${input:+  failing input: $pkg/$input}"
		grep -vE '^fuzz: elapsed: ' "$log" | tail -n 40 | sed 's/^/    /'
	fi
	echo "$line"
	summary+=("$line")
done <<<"$targets"

echo
echo "Fuzzing summary (FUZZTIME=$FUZZTIME each):"
printf '%s\n' "${summary[@]}"
exit "$failed"
