#!/usr/bin/env bash
# The evidence suite of issue 8 in its full form, one part after the other so they do not share
# the CPUs: the crash test with 100 SIGKILLs, the long fault run, both fuzz targets for a fixed
# time, the load bench, and the stuck-connection flood (slowloris and silent sockets, and
# connections over the per-address cap). `.ci/run` runs the short forms (the default `cargo test` and
# `cargo bench --features bench --bench load -- --short`); this is what the README's figures
# come from. Each part's whole output goes to test-artifacts/evidence/<part>.log and its summary
# lines to the terminal.
#
#   tests/evidence-full.sh                 # everything (≈ 45 min on 2 CPUs)
#   tests/evidence-full.sh crash load      # only some parts: crash faults fuzz load slowloris
#   tests/evidence-full.sh drill           # the restore drill (not in the default set: it needs
#                                          # litestream and moto_server, see deploy/README.md §九)
#
# Sizes: CRASH_KILLS (100), FAULT_MESSAGES (10000), FUZZ_SECONDS per target (600),
# SLOWLORIS (1500) and SILENT (500) stuck connections, OVERCAP (1100) connections over the cap.
# Fuzzing needs the nightly toolchain and cargo-fuzz:
#   rustup toolchain install nightly && cargo install cargo-fuzz
set -euo pipefail

cd "$(dirname "$0")/.."
out=test-artifacts/evidence
mkdir -p "$out"
parts=("$@")
[ ${#parts[@]} -gt 0 ] || parts=(crash faults fuzz load slowloris)

CRASH_KILLS=${CRASH_KILLS:-100}
FAULT_MESSAGES=${FAULT_MESSAGES:-10000}
FUZZ_SECONDS=${FUZZ_SECONDS:-600}
SLOWLORIS=${SLOWLORIS:-1500}
SILENT=${SILENT:-500}
OVERCAP=${OVERCAP:-1100}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(git rev-parse --short HEAD)"

run() { # run <part> <command...>: whole output to the log, wall time printed
    local part=$1
    shift
    local start=$SECONDS
    echo "== $part: $*"
    if ! "$@" >"$out/$part.log" 2>&1; then
        tail -40 "$out/$part.log"
        echo "== $part FAILED (log: $out/$part.log)"
        exit 1
    fi
    echo "   $((SECONDS - start)) s wall, log: $out/$part.log"
}

for part in "${parts[@]}"; do
    case $part in
    crash)
        run crash env TIAOCHU_CRASH_KILLS="$CRASH_KILLS" \
            cargo test --test api crash:: -- --nocapture --test-threads 1
        grep -E '^crash test: [^k]' "$out/crash.log" || true
        ;;
    faults)
        run faults env TIAOCHU_FAULT_MESSAGES="$FAULT_MESSAGES" \
            cargo test --test api outbound::a_third_of_answers_failing -- --nocapture --exact
        grep -E '^fault test' "$out/faults.log" || true
        ;;
    fuzz)
        command -v cargo-fuzz >/dev/null || {
            echo "cargo-fuzz is not installed: cargo install cargo-fuzz"
            exit 1
        }
        corpus=$(mktemp -d)
        trap 'rm -rf "$corpus"' EXIT
        mkdir -p "$corpus/application" "$corpus/command"
        cp tests/fixtures/applications/*.txt "$corpus/application/"
        cp fuzz/seeds/command/* "$corpus/command/"
        for target in application command; do
            run "fuzz-$target" cargo +nightly fuzz run "$target" "$corpus/$target" -- \
                -max_total_time="$FUZZ_SECONDS" -print_final_stats=1
            grep -E '^(Done|stat::number_of_executed_units|#[0-9]+ *DONE)' "$out/fuzz-$target.log" || true
        done
        ;;
    drill)
        cargo build --release --bin tiaochu
        run drill bash deploy/restore-drill.sh target/release/tiaochu
        sed -n '/^== summary/,$p' "$out/drill.log" | grep -v '^  lost (' || true
        ;;
    load)
        run load cargo bench --features bench --bench load
        grep -E 'machine|ratio|RSS|bare|service' "$out/load.log" || true
        ;;
    slowloris)
        # Both ends of every connection are in the test process: raise its open-file limit.
        ulimit -n "$(ulimit -Hn)" 2>/dev/null || ulimit -n 65536 2>/dev/null || true
        run slowloris env TIAOCHU_SLOWLORIS_CONNECTIONS="$SLOWLORIS" \
            TIAOCHU_SILENT_CONNECTIONS="$SILENT" TIAOCHU_OVERCAP_CONNECTIONS="$OVERCAP" \
            cargo test --test api -- --nocapture --test-threads 1 \
            attacks::network::slowloris_and_silent_floods attacks::network::connections_over_the_per_address_cap
        grep -oE '(slowloris|over-cap) test: .*' "$out/slowloris.log" || true
        ;;
    *)
        echo "unknown part: $part (crash, faults, fuzz, load, slowloris)"
        exit 2
        ;;
    esac
done
