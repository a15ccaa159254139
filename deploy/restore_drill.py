#!/usr/bin/env python3
"""The restore drill's helpers (deploy/restore-drill.sh runs them; standard library only).

- ``free-port``: prints a free loopback TCP port.
- ``bucket ENDPOINT NAME``: creates a bucket on the local S3 stand-in (moto accepts an unsigned
  ``PUT /NAME``; a real bucket is made by its owner, never by the drill).
- ``sink PORT``: the DingTalk the service talks to in the drill: answers every request 200 with a
  body that satisfies its outbound calls (token and sends), as the load bench's sink does.
- ``load BASE ACKS STOP``: posts signed robot callbacks (the app secret from ``TIAOCHU_DINGTALK__APP_SECRET``)
  from ``DRILL_WORKERS`` threads at ``DRILL_RATE`` messages per second in all, until the file STOP
  exists or the service stops answering; appends ``msgId<TAB>ack time (ms since the epoch)`` to
  ACKS for every callback answered 200, i.e. committed to the inbox with ``synchronous=FULL``.
- ``probe BASE ID``: posts one signed callback and exits 0 iff it is answered 200.
- ``settle BASE``: waits until the service's inbox is worked off (its ``/metrics`` gauge
  ``tiaochu_inbox_pending`` is 0) and prints how many messages were waiting at first.
- ``holds DB ID [SECONDS]``: exits 0 once the database's inbox holds the message ID, 1 when it
  does not within SECONDS (default 0: look once). A database a follower is writing may be read
  half-written; such a look counts as not yet.
- ``sizes DB``: what the database holds and how many bytes each kind of row takes (SQLite's
  ``dbstat``, indexes counted with their table): the figures of docs/scaling.md.
- ``report NAME ACKS KILL_MS DB``: compares the acknowledged msgIds with the restored database's
  inbox and prints the figures; exits 1 when an acknowledged message older than ``DRILL_RPO_MS``
  (default 1000) before the kill is missing.

Every callback is signed as DingTalk signs it (docs/dingtalk-protocol.md §1.2): ``sign`` is the
Base64 of HMAC-SHA256(key = app secret, message = timestamp + "\\n" + app secret). The service
refuses a (timestamp, sign) pair that comes with a second message, so every callback gets its own
millisecond.
"""

import base64
import hashlib
import hmac
import http.client
import http.server
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import urllib.parse
import urllib.request

LIAISON = "drill-liaison"

_stamp_lock = threading.Lock()
_last_stamp = [0]


def unique_ms():
    with _stamp_lock:
        now = int(time.time() * 1000)
        _last_stamp[0] = max(now, _last_stamp[0] + 1)
        return _last_stamp[0]


def sign(timestamp, secret):
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def application(n):
    # A complete application (the load bench's text) with its own ticket: each opens a case,
    # its events, outbox rows, timers and search index entries in one decision.
    return (
        f"工单编号：DH2099{n:09d}\n工单标题：演练工单\n首接单位：区人社局\n"
        "已采取措施：已联系当事人核实情况。\n办理难点：涉及多个部门，一家无法办理。\n"
        "需协调部门及事由：区住建局核查项目审批。\n请示分管领导相关情况：分管领导已同意。"
    )


def message_text(n):
    # Half applications (the heavy write), half queries (a light one: inbox row and a reply).
    return application(n) if n % 2 == 0 else "帮助"


def body(msg_id, text, now):
    return json.dumps(
        {
            "msgtype": "text",
            "msgId": msg_id,
            "createAt": now,
            "conversationType": "1",
            "conversationId": "cid-drill",
            "senderStaffId": LIAISON,
            "senderNick": "演练联络员",
            "text": {"content": text},
        },
        ensure_ascii=False,
    ).encode()


def post(conn, secret, msg_id, text):
    """Posts one signed callback on `conn`; returns the HTTP status."""
    now = unique_ms()
    headers = {
        "content-type": "application/json; charset=utf-8",
        "timestamp": str(now),
        "sign": sign(str(now), secret),
    }
    conn.request("POST", "/dingtalk/robot", body=body(msg_id, text, now), headers=headers)
    response = conn.getresponse()
    response.read()
    return response.status


def connect(base):
    url = urllib.parse.urlsplit(base)
    return http.client.HTTPConnection(url.hostname, url.port, timeout=5)


def cmd_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def cmd_bucket(endpoint, name):
    request = urllib.request.Request(f"{endpoint}/{name}", method="PUT")
    with urllib.request.urlopen(request, timeout=10) as response:
        if response.status != 200:
            sys.exit(f"bucket {name}: HTTP {response.status}")


class Sink(http.server.BaseHTTPRequestHandler):
    ANSWER = json.dumps(
        {
            "errcode": 0,
            "errmsg": "ok",
            "accessToken": "drill-token",
            "expireIn": 7200,
            "processQueryKey": "drill",
        }
    ).encode()

    def answer(self):
        length = int(self.headers.get("content-length") or 0)
        self.rfile.read(length)
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(self.ANSWER)))
        self.end_headers()
        self.wfile.write(self.ANSWER)

    do_GET = do_POST = do_PUT = answer

    def log_message(self, *args):
        pass


def cmd_sink(port):
    http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Sink).serve_forever()


def cmd_load(base, acks_path, stop_path):
    secret = os.environ["TIAOCHU_DINGTALK__APP_SECRET"]
    workers = int(os.environ.get("DRILL_WORKERS", "4"))
    rate = float(os.environ.get("DRILL_RATE", "100"))
    run = os.environ.get("DRILL_RUN", str(os.getpid()))
    counter = [0]
    lock = threading.Lock()
    acks = open(acks_path, "a", buffering=1, encoding="utf-8")
    errors = {}

    def worker():
        conn = connect(base)
        interval = workers / rate
        next_at = time.monotonic()
        failures = 0
        while not os.path.exists(stop_path) and failures < 20:
            with lock:
                counter[0] += 1
                n = counter[0]
            msg_id = f"drill-{run}-{n}"
            # Resent with the same msgId until answered, as DingTalk redelivers; given up when
            # the service is gone (the drill killed it).
            while not os.path.exists(stop_path) and failures < 20:
                try:
                    status = post(conn, secret, msg_id, message_text(n))
                except (OSError, http.client.HTTPException) as e:
                    status = type(e).__name__
                    conn.close()
                    conn = connect(base)
                if status == 200:
                    failures = 0
                    with lock:
                        acks.write(f"{msg_id}\t{int(time.time() * 1000)}\n")
                    break
                failures += 1
                with lock:
                    errors[status] = errors.get(status, 0) + 1
                time.sleep(0.05)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    acks.close()
    if errors:
        print(f"load: unanswered attempts {errors}", file=sys.stderr)


def cmd_probe(base, msg_id):
    secret = os.environ["TIAOCHU_DINGTALK__APP_SECRET"]
    status = post(connect(base), secret, msg_id, "帮助")
    if status != 200:
        sys.exit(f"probe {msg_id}: HTTP {status}")


def cmd_settle(base):
    first = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:
            text = response.read().decode()
        pending = next(
            int(float(line.split()[1]))
            for line in text.splitlines()
            if line.startswith("tiaochu_inbox_pending ")
        )
        if first is None:
            first = pending
        if pending == 0:
            print(first)
            return
        time.sleep(0.2)
    sys.exit(f"the restored service still had {pending} messages waiting after 120 s")


def cmd_holds(db, msg_id, seconds="0"):
    deadline = time.monotonic() + float(seconds)
    while True:
        try:
            conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
            found = conn.execute(
                "SELECT 1 FROM inbox WHERE message_id = ?", (msg_id,)
            ).fetchone()
            conn.close()
            if found:
                return
        except sqlite3.Error:
            pass
        if time.monotonic() >= deadline:
            sys.exit(1)
        time.sleep(0.2)


def cmd_report(name, acks_path, kill_ms, db):
    kill_ms = int(kill_ms)
    goal_ms = int(os.environ.get("DRILL_RPO_MS", "1000"))
    acked = {}
    with open(acks_path, encoding="utf-8") as f:
        for line in f:
            msg_id, at = line.split("\t")
            acked[msg_id] = int(at)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    stored = {
        row[0]
        for row in conn.execute("SELECT message_id FROM inbox WHERE source = 'robot'")
    }
    cases = conn.execute("SELECT count(*) FROM cases").fetchone()[0]
    unfinished = conn.execute(
        "SELECT count(*) FROM inbox WHERE finished_at IS NULL"
    ).fetchone()[0]
    conn.close()
    restored = [m for m in acked if m in stored]
    lost = sorted((acked[m], m) for m in acked if m not in stored)
    late = [(at, m) for at, m in lost if kill_ms - at <= goal_ms]
    early = [(at, m) for at, m in lost if kill_ms - at > goal_ms]
    newest = max((acked[m] for m in restored), default=None)
    # RPO: how far before the kill the oldest lost acknowledgement lies (0 when none is lost). An
    # answer can arrive between the moment the drill takes the kill time and the signal landing:
    # its age counts as 0.
    rpo = max(0, kill_ms - lost[0][0]) if lost else 0
    print(f"== {name}")
    print(f"  acknowledged {len(acked)}, restored {len(restored)}, lost {len(lost)}")
    print(f"  measured RPO {rpo} ms (goal: nothing acknowledged more than {goal_ms} ms before the kill lost)")
    if newest is not None:
        print(f"  newest restored acknowledgement {kill_ms - newest} ms before the kill")
    print(
        f"  restored database: {cases} cases, {len(stored)} robot messages in the inbox, "
        f"{unfinished} not yet processed"
    )
    for at, m in late:
        print(f"  lost (acknowledged {max(0, kill_ms - at)} ms before the kill, within the goal): {m}")
    for at, m in early:
        print(f"  LOST (acknowledged {kill_ms - at} ms before the kill, beyond the goal): {m}")
    if early or not acked:
        sys.exit(1)


# The tables each kind of row lives in (indexes are counted with their table).
CASE_TABLES = (
    "cases", "case_versions", "case_units", "events", "timers", "cards",
    "similar_docs", "similar_fts_data", "similar_fts_idx", "similar_fts_docsize",
    "similar_fts_config", "similar_terms", "similar_stats",
)
MESSAGE_TABLES = ("inbox", "seen_signatures")


def cmd_sizes(db):
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    one = lambda sql: conn.execute(sql).fetchone()[0]
    page = one("PRAGMA page_size")
    used = (one("PRAGMA page_count") - one("PRAGMA freelist_count")) * page
    owner = dict(conn.execute("SELECT name, tbl_name FROM sqlite_schema"))
    per_table = {}
    try:
        rows = conn.execute("SELECT name, sum(pgsize) FROM dbstat GROUP BY name").fetchall()
    except sqlite3.OperationalError:
        # An SQLite built without the dbstat table: the counts only.
        rows = []
    for name, size in rows:
        table = owner.get(name, name)
        per_table[table] = per_table.get(table, 0) + size
    cases = one("SELECT count(*) FROM cases")
    messages = one("SELECT count(*) FROM inbox")
    outbox = one("SELECT count(*) FROM outbox")
    events = one("SELECT count(*) FROM events")
    timers = one("SELECT count(*) FROM timers")
    conn.close()
    case_bytes = sum(per_table.get(t, 0) for t in CASE_TABLES)
    message_bytes = sum(per_table.get(t, 0) for t in MESSAGE_TABLES)
    outbox_bytes = per_table.get("outbox", 0)
    print(
        f"  database {used / 1e6:.1f} MB in use: {cases} cases, {events} events, {timers} timers, "
        f"{messages} inbound messages, {outbox} outbound messages"
    )
    if not per_table:
        print("  (this SQLite has no dbstat table: no sizes per kind of row)")
    elif cases:
        print(f"  per case (cases, versions, events, timers, cards, similar index): {case_bytes / cases / 1e3:.1f} kB")
    if per_table and messages:
        print(f"  per inbound message (inbox row, signature record): {message_bytes / messages / 1e3:.2f} kB")
    if per_table and outbox:
        print(f"  per outbound message (outbox row, the exact bytes sent): {outbox_bytes / outbox / 1e3:.2f} kB")


COMMANDS = {
    "free-port": cmd_free_port,
    "bucket": cmd_bucket,
    "sink": cmd_sink,
    "load": cmd_load,
    "probe": cmd_probe,
    "settle": cmd_settle,
    "sizes": cmd_sizes,
    "holds": cmd_holds,
    "report": cmd_report,
}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(f"usage: {sys.argv[0]} {'|'.join(COMMANDS)} ...")
    COMMANDS[sys.argv[1]](*sys.argv[2:])
