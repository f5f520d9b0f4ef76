#!/usr/bin/env bash
# IMAP ingest benchmark (BENCHMARKS.md, "IMAP ingest"). Not a test.
#
#   sudo scripts/bench-imap.sh            # N=1000 RUNS=3 LATENCY=50 MAILBOXES=5
#
# Starts a private Dovecot with ../shared/mailstack/mailstack.sh (Dovecot
# only, in /dev/shm), loads N realistic messages with
# ../shared/bench/load_mailbox.py (seed 42: the mailbox the other help
# desks were measured on) and measures, with a release build:
#
#   1. the ceiling: raw `UID FETCH 1:* BODY.PEEK[]` over one connection
#      (../shared/bench/raw_fetch.py), plain and implicit TLS, and the CPU
#      Dovecot itself spends per message serving it; then the floor
#      (examples/bench_floor.rs): the CPU per message of what any ingest
#      must do (mail-parser alone, SHA-256, a bare durable SQLite insert of
#      the raw bytes, the IMAP+TLS client side);
#   2. end-to-end ingest with `postdesk run --once` (implicit TLS, backlog
#      "all", after_ingest "seen"): messages/s and peak RSS, median of RUNS
#      fresh databases; and the same pass with synchronous=FULL (what
#      postdesk uses) against NORMAL (examples/bench_imap.rs);
#   3. arrival-to-ticket latency under IDLE: LATENCY messages APPENDed one
#      at a time while `postdesk run` idles; from APPEND to the committed
#      row, and from the server's EXISTS (the daemon's debug log) to the
#      "Message ingested." line;
#   4. peak RSS of `postdesk run` draining MAILBOXES mailboxes of N
#      messages each at once (seeds 42, 43, ...), and its RSS once idle.
#
# Prints one JSON object per measurement and a summary. Needs root (the
# mail server), python3, cargo. Keeps nothing: the work dir is removed.
set -Eeuo pipefail
cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/.."

N=${N:-1000}
RUNS=${RUNS:-3}
LATENCY=${LATENCY:-50}
MAILBOXES=${MAILBOXES:-5}
SHARED=${SHARED:-../shared}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
# As systemd/postdesk.service runs it; MALLOC_ARENA_MAX= (empty) measures
# glibc's default.
export MALLOC_ARENA_MAX=${MALLOC_ARENA_MAX-2}

die() { printf 'bench-imap.sh: %s\n' "$*" >&2; exit 1; }
[[ $(id -u) == 0 ]] || die "run as root (the mail server needs it)"
for f in "$SHARED/mailstack/mailstack.sh" "$SHARED/bench/load_mailbox.py" "$SHARED/bench/raw_fetch.py"; do
    [[ -e $f ]] || die "$f is missing (set SHARED=…)"
done

cargo build --release --quiet --bin postdesk --example bench_imap --example bench_floor
BIN=$CARGO_TARGET_DIR/release/postdesk
BENCH=$CARGO_TARGET_DIR/release/examples/bench_imap
FLOOR=$CARGO_TARGET_DIR/release/examples/bench_floor

# The mail server in memory (as in the tests); the databases on disk
# (DBDIR), since what synchronous=FULL costs is an fsync on a real disk.
BASE=/dev/shm
[[ -w $BASE ]] || BASE=/tmp
WORK=$(mktemp -d "$BASE/pd-bench-imap.XXXXXX")
chmod 755 "$WORK"
DBDIR=$(mktemp -d "${DBDIR:-/var/tmp}/pd-bench-db.XXXXXX")
cleanup() {
    [[ -n ${DAEMON_PID:-} ]] && kill -9 "$DAEMON_PID" 2>/dev/null || true
    "$SHARED/mailstack/mailstack.sh" destroy "$WORK/ms" >/dev/null 2>&1 || true
    rm -rf "$WORK" "$DBDIR"
}
trap cleanup EXIT

users="support@example.test:support-secret"
for i in $(seq 1 "$MAILBOXES"); do users+=" m$i@example.test:m$i-secret"; done
MAILSTACK_USERS=$users MAILSTACK_POSTFIX=0 \
    "$SHARED/mailstack/mailstack.sh" start "$WORK/ms" >"$WORK/ms.env" 2>"$WORK/ms.log" \
    || { cat "$WORK/ms.log" >&2; die "the mail stack did not start"; }
# shellcheck disable=SC1091
source "$WORK/ms.env"

load() { # user password seed
    python3 "$SHARED/bench/load_mailbox.py" -n "$N" --seed "$3" --host 127.0.0.1 \
        --port "$IMAP_PORT" --user "$1" --password "$2" --clear --summary "$WORK/load-$1.json" >/dev/null
}
load support@example.test support-secret 42
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(json.dumps({"mailbox": {k: d.get(k) for k in ("n", "seed", "total_bytes", "median_bytes", "max_bytes", "sha256")}}))' \
    "$WORK/load-support@example.test.json"

# config DIR USER PASSWORD [BACKLOG]: a config in DIR, its database in DBDIR
config() {
    local dir=$1 user=$2 pass=$3 backlog=${4:-all}
    mkdir -p "$dir"
    printf '%s\n' "$pass" >"$dir/$user.pass"
    cat >"$dir/postdesk.toml" <<EOF
[store]
path = "$DBDIR/$(basename "$dir").db"
[outbox]
dir = "$dir/outbox"
[[mailboxes]]
name = "support"
address = "$user"
[mailboxes.imap]
host = "127.0.0.1"
port = $IMAPS_PORT
tls = "implicit"
ca_file = "$TLS_CA_FILE"
username = "$user"
password = { file = "$dir/$user.pass" }
backlog = "$backlog"
EOF
}

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
rss_of() { awk '/Maximum resident set size/ {print $6}' "$1"; }

echo "== 1. ceiling: raw UID FETCH 1:* BODY.PEEK[]" >&2
# Dovecot's own CPU for serving the mailbox: its login and imap processes
# exit at LOGOUT and are reaped by the master, so their CPU time shows in
# the master's cutime + cstime (fields 16, 17 of /proc/PID/stat).
reaped() { awk '{print $16 + $17}' "/proc/$DOVECOT_PID/stat"; }
dovecot_us() { # ticks-before ticks-after -> microseconds of CPU per message
    echo "($2 - $1) * 1000000 / $(getconf CLK_TCK) / ($RUNS * $N)" | bc -l | xargs printf '%.0f'
}
t0=$(reaped)
python3 "$SHARED/bench/raw_fetch.py" --port "$IMAP_PORT" --user support@example.test \
    --password support-secret --runs "$RUNS" --json "$WORK/ceiling-plain.json" >/dev/null
sleep 0.5; t1=$(reaped)
python3 "$SHARED/bench/raw_fetch.py" --port "$IMAPS_PORT" --ssl --cafile "$TLS_CA_FILE" \
    --user support@example.test --password support-secret --runs "$RUNS" --json "$WORK/ceiling-tls.json" >/dev/null
sleep 0.5; t2=$(reaped)
DOVECOT_PLAIN_US=$(dovecot_us "$t0" "$t1")
DOVECOT_TLS_US=$(dovecot_us "$t1" "$t2")
echo "{\"ceiling_plain\": $(cat "$WORK/ceiling-plain.json")}"
echo "{\"ceiling_tls\": $(cat "$WORK/ceiling-tls.json")}"
echo "{\"dovecot_cpu_us_per_message\": {\"plain\": $DOVECOT_PLAIN_US, \"tls\": $DOVECOT_TLS_US}}"

echo "== 1b. the floor: CPU per message of the work no ingest can skip" >&2
python3 "$SHARED/bench/load_mailbox.py" -n "$N" --seed 42 --no-imap --eml-dir "$WORK/eml" >/dev/null
config "$WORK/floor" support@example.test support-secret
BENCH_DB_DIR=$DBDIR "$FLOOR" "$WORK/eml" "$WORK/floor/postdesk.toml" | tee "$WORK/floor.json"
# the same over plain IMAP on loopback, which postdesk allows there
sed -e "s/^port = .*/port = $IMAP_PORT/" -e 's/^tls = .*/tls = "none"/' \
    "$WORK/floor/postdesk.toml" >"$WORK/floor/plain.toml"
BENCH_DB_DIR=$DBDIR "$FLOOR" "$WORK/eml" "$WORK/floor/plain.toml" | sed 's/^{"floor_us/{"floor_plain_us/' \
    | tee "$WORK/floor-plain.json"

echo "== 2. end-to-end: postdesk run --once ($RUNS runs)" >&2
: >"$WORK/once.txt"
for r in $(seq 1 "$RUNS"); do
    d=$WORK/once-$r
    config "$d" support@example.test support-secret
    start=$(date +%s.%N)
    /usr/bin/time -v "$BIN" --config "$d/postdesk.toml" run --once >"$d/out.txt" 2>"$d/time.txt"
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
    read_n=$(grep -o '^[0-9]* messages read' "$d/out.txt" | grep -o '^[0-9]*')
    echo "$secs $read_n $(rss_of "$d/time.txt")" >>"$WORK/once.txt"
    echo "{\"run_once\": $r, \"seconds\": $secs, \"messages\": $read_n, \"peak_rss_kb\": $(rss_of "$d/time.txt")}"
done
ONCE_S=$(cut -d' ' -f1 "$WORK/once.txt" | median)
ONCE_RSS=$(cut -d' ' -f3 "$WORK/once.txt" | median)
for mode in full normal full normal full normal; do
    d=$WORK/sync-$mode-$RANDOM
    config "$d" support@example.test support-secret
    echo "$("$BENCH" "$d/postdesk.toml" "$mode")" | tee -a "$WORK/sync.jsonl"
done

echo "== 3. latency under IDLE ($LATENCY arrivals)" >&2
d=$WORK/idle
config "$d" support@example.test support-secret none
python3 "$SHARED/bench/load_mailbox.py" -n "$LATENCY" --seed 7 --no-imap --eml-dir "$d/eml" >/dev/null
RUST_LOG=postdesk=debug "$BIN" --config "$d/postdesk.toml" --log-format json run 2>"$d/log.jsonl" &
DAEMON_PID=$!
python3 - "$d" "$IMAPS_PORT" "$TLS_CA_FILE" "$LATENCY" "$DBDIR/idle.db" <<'EOF'
import imaplib, json, os, sqlite3, ssl, sys, time
from datetime import datetime
d, port, ca, n, db = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), sys.argv[5]
def log():
    try:
        return [json.loads(l) for l in open(f"{d}/log.jsonl") if l.startswith("{")]
    except FileNotFoundError:
        return []
def idles():
    return sum(1 for e in log() if e.get("message") == "Waiting in IDLE." or e.get("fields", {}).get("message") == "Waiting in IDLE.")
def wait(pred, what, limit=60):
    t = time.time()
    while not pred():
        if time.time() - t > limit:
            sys.exit(f"timeout waiting for {what}")
        time.sleep(0.002)
def stored():
    try:
        c = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        return c.execute("SELECT count(*) FROM messages WHERE direction = 'inbound'").fetchone()[0]
    except sqlite3.Error:
        return -1
wait(lambda: idles() >= 1, "IDLE")
ctx = ssl.create_default_context(cafile=ca)
imap = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=ctx)
imap.login("support@example.test", "support-secret")
files = sorted(os.listdir(f"{d}/eml"))[:n]
append_to_ticket = []
for i, f in enumerate(files):
    before = stored()
    raw = open(f"{d}/eml/{f}", "rb").read()
    t0 = time.time()
    imap.append("INBOX", None, None, raw)
    wait(lambda: stored() > before, "the ticket")
    append_to_ticket.append(time.time() - t0)
    wait(lambda: idles() >= i + 2, "IDLE again")
imap.logout()
def ts(e):
    return datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()
exists_to_ticket, pending = [], None
for e in log():
    msg = e.get("message") or e.get("fields", {}).get("message")
    if msg == "New mail reported (EXISTS).":
        pending = ts(e)
    elif msg == "Message ingested." and pending is not None:
        exists_to_ticket.append(ts(e) - pending)
        pending = None
def pct(xs, p):
    xs = sorted(xs)
    return round(1000 * xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))], 1)
print(json.dumps({"latency_ms": {
    "arrivals": len(append_to_ticket),
    "append_to_ticket_p50": pct(append_to_ticket, 50), "append_to_ticket_p99": pct(append_to_ticket, 99),
    "exists_to_ticket_p50": pct(exists_to_ticket, 50), "exists_to_ticket_p99": pct(exists_to_ticket, 99),
    "exists_samples": len(exists_to_ticket)}}))
EOF
kill -TERM "$DAEMON_PID"; wait "$DAEMON_PID" || true; DAEMON_PID=

echo "== 4. RSS: postdesk run with $MAILBOXES mailboxes of $N messages" >&2
d=$WORK/rss
mkdir -p "$d"
extra=""
for i in $(seq 1 "$MAILBOXES"); do
    load "m$i@example.test" "m$i-secret" $((41 + i))
    printf 'm%s-secret\n' "$i" >"$d/m$i.pass"
    extra+="
[[mailboxes]]
name = \"m$i\"
address = \"m$i@example.test\"
[mailboxes.imap]
host = \"127.0.0.1\"
port = $IMAPS_PORT
tls = \"implicit\"
ca_file = \"$TLS_CA_FILE\"
username = \"m$i@example.test\"
password = { file = \"$d/m$i.pass\" }
backlog = \"all\""
done
cat >"$d/postdesk.toml" <<EOF
[store]
path = "$DBDIR/rss.db"
[outbox]
dir = "$d/outbox"
$extra
EOF
start=$(date +%s.%N)
/usr/bin/time -v "$BIN" --config "$d/postdesk.toml" run 2>"$d/time.txt" &
DAEMON_PID=$!
want=$((N * MAILBOXES))
# Peak private memory too: RSS also counts the clean pages of the binary
# and libc mapped from the page cache (about 13 MB), which are shared and
# can be reclaimed.
anon_peak=0
until [[ $(python3 -c "import sqlite3; print(sqlite3.connect('file:$DBDIR/rss.db?mode=ro', uri=True).execute('SELECT count(*) FROM origins').fetchone()[0])" 2>/dev/null || echo 0) -ge $want ]]; do
    p=$(pgrep -P "$DAEMON_PID" -x postdesk || true)
    anon=$(awk '/RssAnon/ {print $2}' "/proc/${p:-0}/status" 2>/dev/null || echo 0)
    (( ${anon:-0} > anon_peak )) && anon_peak=$anon
    sleep 0.05
done
drain=$(echo "$(date +%s.%N) - $start" | bc -l)
sleep 3
pid=$(pgrep -P "$DAEMON_PID" -x postdesk || true)
idle_rss=$(awk '/VmRSS/ {print $2}' "/proc/${pid:-$DAEMON_PID}/status" 2>/dev/null || echo 0)
kill -TERM "${pid:-$DAEMON_PID}"; wait "$DAEMON_PID" || true; DAEMON_PID=
echo "{\"mailboxes\": $MAILBOXES, \"messages\": $want, \"drain_seconds\": $drain, \"peak_rss_kb\": $(rss_of "$d/time.txt"), \"peak_anon_kb\": $anon_peak, \"idle_rss_kb\": $idle_rss, \"malloc_arena_max\": \"${MALLOC_ARENA_MAX}\"}"

echo "== summary" >&2
python3 - "$WORK" "$N" "$ONCE_S" "$ONCE_RSS" "$DOVECOT_TLS_US" "$DOVECOT_PLAIN_US" <<'EOF'
import json, os, sys, statistics
work, n, once_s, once_rss = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
runs = [json.loads(l) for l in open(f"{work}/sync.jsonl")]
med = lambda m: statistics.median(r["messages_per_s"] for r in runs if r["synchronous"] == m)
print(f"run --once: {n} messages in {once_s:.3f} s = {n / once_s:.0f} msg/s (median), peak RSS {once_rss / 1024:.1f} MB")
print(f"synchronous=FULL {med('full'):.0f} msg/s, NORMAL {med('normal'):.0f} msg/s (medians, bench_imap)")
for label, file, key, dovecot in (
    ("TLS", "floor.json", "floor_us_per_message", float(sys.argv[5])),
    ("plain IMAP", "floor-plain.json", "floor_plain_us_per_message", float(sys.argv[6])),
):
    f = json.load(open(f"{work}/{file}"))[key]
    total = f["sum"] + dovecot
    print(f"floor over {label}: Dovecot {dovecot:.0f} + client {f['fetch_imap_client']:.0f} + mail-parser {f['parse_mail_parser']:.0f}"
          f" + SHA-256 {f['hash_sha256']:.0f} + raw store {f['store_raw_full']:.0f} = {total:.0f} µs of CPU per message"
          f" -> at most {os.cpu_count() * 1e6 / total:.0f} msg/s on {os.cpu_count()} cores with nothing else done")
EOF
