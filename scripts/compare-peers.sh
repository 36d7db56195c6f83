#!/bin/bash
# ipclab against established peers on loopback, in one run, one table:
#   ping         iputils ping            vs ipclab ping              (root only)
#   UDP/TCP RTT  sockperf ping-pong      vs bench ipc udp, tcp
#   TCP stream   iperf3                  vs bench ipc tcp (--chunk 131072)
#   echo         socat, ncat, C epoll, C fork servers vs ipclab tcp server
#                (poll, fork), all driven by bench echo --target, N=1 and 8
#   pipe, unix   C ping-pong (scripts/c/pingpong.c) vs bench ipc pipe, unix
#   RPC          rpcgen program + tirpc client (lmbench's NULL call)
#                vs bench ipc rpc-udp, rpc-tcp
# Everything runs pinned to one CPU (taskset -c $CPU, default 0), all traffic
# to 127.0.0.1; every run is bounded in count and time (and by timeout). As
# root, missing peers are installed with apt-get; otherwise their rows are
# skipped (packages: sockperf iperf3 socat ncat gcc libc6-dev rpcsvc-proto
# libtirpc-dev rpcbind iputils-ping util-linux python3). Servers started here
# are killed and reaped on exit (TERM to their process group); nothing else
# is touched. Latency rows compare medians (ipclab's median over batches of
# round trips with sockperf's 50th percentile ×2, and with the C programs'
# median over batches of 100), ping compares iputils' avg with ipclab's.
# Each ipclab `bench ipc` run is made right before its peer's, and the whole
# set is repeated ROUNDS times (default 3); the table shows the median ratio
# and its range over the rounds.
# Needs a release build:
#   cargo build --release && sudo scripts/compare-peers.sh
#   CPU=1 BIN=/usr/local/bin/ipclab sudo -E scripts/compare-peers.sh
set -eu
cd "$(dirname "$0")/.."
PATH=$PATH:/usr/sbin:/sbin
BIN=${BIN:-target/release/ipclab}
CPU=${CPU:-0}
SECS=${SECS:-3}   # seconds per peer run (sockperf, iperf3, bench echo)
ROUNDS=${ROUNDS:-3}  # every pair is measured this many times, interleaved; the table
                     # gives the median ratio and the range (one run on a shared
                     # machine moves by 10–30%)
ROOT=no; [ "$(id -u)" = 0 ] && ROOT=yes

WORK=$(mktemp -d)
PIDS=""   # servers started here, newest first; each leads its own process group
stop() {  # stop PID: TERM its process group (it and its forks), then reap it
  local p=$1 s            # only while PID is still our child: never a reused PID
  s=$(ps -o ppid=,pgid= -p "$p" 2>/dev/null | awk '{print $1, $2}') || true
  if [ "$s" = "$$ $p" ]; then kill -TERM -- "-$p" 2>/dev/null || true
  elif [ "${s%% *}" = "$$" ]; then kill -TERM "$p" 2>/dev/null || true; fi
  wait "$p" 2>/dev/null || true
  PIDS=$(echo "$PIDS" | tr ' ' '\n' | grep -vx "$p" | tr '\n' ' ') || true
}
cleanup() { for p in $PIDS; do stop "$p"; done; rm -rf "$WORK"; }
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

say() { echo "$*" >&2; }
have() { command -v "$1" >/dev/null 2>&1; }
note() { echo "- $*" >>"$WORK/notes"; say "note: $*"; }  # a file: notes from $(…) survive
ROWS=$WORK/rows
row() { printf '%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"; }  # measure ipclab peer kind target

missing() {
  local m=""
  for c in sockperf iperf3 socat ncat gcc; do have $c || m="$m $c"; done
  [ -e /usr/include/stdio.h ] || m="$m libc6-dev"
  have rpcgen || m="$m rpcsvc-proto"
  [ -e /usr/include/tirpc/rpc/rpc.h ] || m="$m libtirpc-dev"
  have rpcbind || m="$m rpcbind"
  { have ping && ping -V 2>&1 | grep -q iputils; } || m="$m iputils-ping"
  { have taskset && have setsid; } || m="$m util-linux"
  have python3 || m="$m python3"
  echo "$m"
}
MISS=$(missing)
if [ -n "$MISS" ] && [ $ROOT = yes ] && have apt-get; then
  say "installing:$MISS (apt-get update once, then install)"
  # shellcheck disable=SC2086
  { DEBIAN_FRONTEND=noninteractive apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $MISS; } >&2 ||
    say "apt-get failed; the rows of what is still missing are skipped"
  MISS=$(missing)
fi
[ -n "$MISS" ] && note "missing:$MISS (apt-get install$MISS as root); their rows are skipped"
case " $MISS " in *" python3 "*|*" util-linux "*)
  say "python3 (JSON) and util-linux (taskset, setsid) are needed for every row"; exit 1;; esac
have ss || { say "ss (iproute2) is needed to find free ports"; exit 1; }
[ -x "$BIN" ] || { say "no $BIN: cargo build --release first (or BIN=…)"; exit 1; }
PIN=(taskset -c "$CPU")
lacks() { case " $MISS " in *" $1 "*) return 0;; esac; return 1; }

echo "date: $(date -Is)"
echo "nproc: $(nproc); kernel: $(uname -r); CPU: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
echo "placement: every process pinned to CPU $CPU (taskset -c $CPU; bench --pin $CPU); ipclab: $BIN"

NEXT=$((20000 + RANDOM % 10000))
next_port() {  # sets PORT to a port no TCP or UDP socket holds (below the ephemeral range)
  local i
  for i in $(seq 100); do
    NEXT=$((NEXT + 1)); [ $NEXT -gt 32000 ] && NEXT=20000
    [ -z "$(ss -Hltun "( sport = :$NEXT )")" ] && { PORT=$NEXT; return 0; }
  done
  return 1
}
start() {  # start NAME tcp|udp PORT CMD…: pinned, in its own group; waits until it listens
  local name=$1 proto=$2 port=$3 i; shift 3
  setsid "${PIN[@]}" "$@" >"$WORK/$name.log" 2>&1 &
  PIDS="$! $PIDS"; SPID=$!
  for i in $(seq 50); do
    if [ "$proto" = tcp ]; then [ -n "$(ss -Hltn "( sport = :$port )")" ] && return 0
    else [ -n "$(ss -Hlun "( sport = :$port )")" ] && return 0; fi
    kill -0 "$SPID" 2>/dev/null || break; sleep 0.1
  done
  note "$name did not start on port $port: $(tail -c 300 "$WORK/$name.log" | tr '\n' ' ')"
  stop "$SPID"; return 1
}
jget() {  # jget FILE TABLE KEY VALUE FIELD: a field of a row of an ipclab JSON table
  python3 - "$@" <<'EOF'
import json, sys
f, t, k, v, field = sys.argv[1:6]
for line in open(f):
    try: o = json.loads(line)
    except ValueError: continue
    if o.get("type") == "table" and o.get("name") == t:
        for r in o["rows"]:
            if str(r.get(k)) == v and field in r: print(r[field]); sys.exit(0)
sys.exit(1)
EOF
}
ival() {  # ival FILE TABLE KEY VALUE FIELD: as jget, "-" and a note if absent
  jget "$@" 2>/dev/null || { note "ipclab JSON ($2) has no row $3=$4 with $5"; echo -; }
}

# --- C programs ----------------------------------------------------------
C=scripts/c; CBIN=$WORK/c; mkdir -p "$CBIN"; CC_OK=no; RPC_OK=no
if ! lacks gcc && ! lacks libc6-dev; then
  if gcc -O2 -o "$CBIN/echo_epoll" $C/echo_epoll.c && gcc -O2 -o "$CBIN/echo_fork" $C/echo_fork.c &&
     gcc -O2 -o "$CBIN/pingpong" $C/pingpong.c; then CC_OK=yes; else note "gcc failed on scripts/c"; fi
  if ! lacks rpcsvc-proto && ! lacks libtirpc-dev; then
    cp $C/nullrpc.x "$CBIN/"
    if (cd "$CBIN" && rpcgen -h -o nullrpc.h nullrpc.x && rpcgen -m -o nullrpc_svc.c nullrpc.x) &&
       gcc -O2 -I/usr/include/tirpc -I"$CBIN" -o "$CBIN/nullrpc_server" $C/nullrpc_server.c "$CBIN/nullrpc_svc.c" -ltirpc &&
       gcc -O2 -I/usr/include/tirpc -I"$CBIN" -o "$CBIN/nullrpc_client" $C/nullrpc_client.c -ltirpc
    then RPC_OK=yes; else note "rpcgen/gcc failed on scripts/c/nullrpc*"; fi
  fi
fi
lacks rpcbind && RPC_OK=no

# --- ipclab bench ipc, run next to each peer (a loaded machine drifts) ------
LAT="0.90 1.10"   # bench ipc within ±10% of C ping-pong and sockperf (iperf3, RPC: shown, no goal)
ipc() {  # ipc FILE ARGS…: one bench ipc run, pinned, bounded in trips and time
  local f=$1; shift
  say "== ipclab bench ipc $*"
  timeout -k 5 120 "${PIN[@]}" "$BIN" --format json bench ipc --size 32 --round-trips 200000 \
    --seconds 0.5 --pin "$CPU" "$@" >"$f" || note "ipclab bench ipc $* failed (exit $?)"
}

declare -A RPS RI RP
measure_round() {  # every row once; rounds are interleaved, peer beside ipclab
# --- 1. ping -------------------------------------------------------------
avg() { sed -n 's/.*rtt min\/avg\/max\/mdev = [0-9.]*\/\([0-9.]*\)\/.*/\1/p'; }
if [ $ROOT = no ]; then row "ping avg RTT, ms" - - lat "skipped: -i 0.002 needs root"
elif lacks iputils-ping; then row "ping avg RTT, ms" - - lat "skipped: no iputils ping"
else
  pingavg() {  # pingavg INTERVAL: P (iputils) and I (ipclab), avg ms; ipclab's trace off (--quiet)
    say "== ping -c 200 -i $1: iputils, then ipclab"
    P=$(timeout -k 2 30 "${PIN[@]}" ping -c 200 -i "$1" -w 20 -q 127.0.0.1 2>"$WORK/ping.err" | avg) || true
    I=$(timeout -k 2 30 "${PIN[@]}" "$BIN" --quiet ping -c 200 -i "$1" -w 20 -q 127.0.0.1 2>"$WORK/ping.err" | avg) || true
  }
  iv=0.002; pingavg $iv
  if [ -z "$I" ]; then
    note "ipclab ping -i 0.002: $(tr '\n' ' ' <"$WORK/ping.err"); both rerun with -i 0.01"
    iv=0.01; pingavg $iv
  fi
  row "ping avg RTT, ms (-i $iv; avg/avg)" "${I:--}" "${P:--}" lat "band 0.95 1.05"
fi

# --- 2. sockperf ping-pong -----------------------------------------------
IPC=$WORK/ipc-net.json; ipc "$IPC" --mechanisms udp,tcp
for proto in udp tcp; do
  m="${proto^^} 32 B RTT median, µs (sockperf 2×one-way)"
  i=$(ival "$IPC" ipc-latency mechanism $proto median_us)
  if lacks sockperf; then row "$m" "$i" - lat "skipped: no sockperf"; continue; fi
  next_port; flag=""; [ $proto = tcp ] && flag=--tcp
  say "== sockperf ping-pong $proto, port $PORT"
  # shellcheck disable=SC2086
  if start sockperf-$proto $proto "$PORT" sockperf server -i 127.0.0.1 -p "$PORT" $flag; then
    # shellcheck disable=SC2086
    timeout -k 2 $((SECS + 20)) "${PIN[@]}" sockperf ping-pong -i 127.0.0.1 -p "$PORT" $flag \
      -m 32 -t "$SECS" >"$WORK/sp.out" 2>&1 || true
    stop "$SPID"
    p=$(sed 's/\x1b\[[0-9;]*m//g; s/.*percentile 50.000 = *\([0-9.]*\).*/\1/p; d' "$WORK/sp.out")
    if [ -n "$p" ]; then p=$(python3 -c "print(2*$p)"); else note "sockperf $proto printed no median"; p=-; fi
    row "$m" "$i" "$p" lat "band $LAT"
  else row "$m" "$i" - lat "skipped: sockperf server did not start"; fi
done

# --- 3. iperf3 -------------------------------------------------------------
m="TCP stream, MB/s (iperf3 received, 128 KiB writes)"
IPC=$WORK/ipc-bw.json; ipc "$IPC" --mechanisms tcp --chunk 131072
i=$(ival "$IPC" ipc-bandwidth mechanism tcp mb_s)
if lacks iperf3; then row "$m" "$i" - rate "skipped: no iperf3"
else
  next_port; say "== iperf3 -t $SECS, port $PORT"
  if start iperf3 tcp "$PORT" iperf3 -s -1 -B 127.0.0.1 -p "$PORT"; then
    timeout -k 2 $((SECS + 20)) "${PIN[@]}" iperf3 -c 127.0.0.1 -p "$PORT" -t "$SECS" -J >"$WORK/iperf.json" || true
    stop "$SPID"
    p=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]/8e6)' \
      "$WORK/iperf.json" 2>/dev/null) || { note "iperf3 gave no end.sum_received"; p=-; }
    row "$m" "$i" "$p" rate "ref $LAT"
  else row "$m" "$i" - rate "skipped: iperf3 server did not start"; fi
fi

# --- 4. echo servers, one load generator ------------------------------------
echo_load() {  # echo_load NAME CMD…(with @PORT@): start, load with N=1 and N=8, stop
  local name=$1 n; shift
  next_port
  if start "$name" tcp "$PORT" "${@//@PORT@/$PORT}"; then
    for n in 1 8; do
      say "== bench echo → $name, $n connection(s), port $PORT"
      timeout -k 2 $((SECS + 30)) "${PIN[@]}" "$BIN" --format json bench echo --target "127.0.0.1:$PORT" --connections $n \
        --size 32 --seconds "$SECS" --requests 5000000 --pin "$CPU" >"$WORK/echo.json" 2>"$WORK/echo.err" || true
      RPS[$name,$n]=$(ival "$WORK/echo.json" echo server "127.0.0.1:$PORT" per_second)
    done
    stop "$SPID"
  else RPS[$name,1]=-; RPS[$name,8]=-; fi
}
if [ $CC_OK = yes ]; then echo_load c-epoll "$CBIN/echo_epoll" @PORT@; echo_load c-fork "$CBIN/echo_fork" @PORT@
else RPS[c-epoll,1]=-; RPS[c-epoll,8]=-; RPS[c-fork,1]=-; RPS[c-fork,8]=-; fi
for model in poll fork; do
  echo_load "ipclab-$model" "$BIN" -q tcp server --listen "127.0.0.1:@PORT@" --model $model \
    --reply-prefix '' --idle-timeout 0
done
if lacks socat; then RPS[socat,1]=-; RPS[socat,8]=-
else echo_load socat socat "TCP-LISTEN:@PORT@,bind=127.0.0.1,reuseaddr,fork" EXEC:cat; fi
if lacks ncat; then RPS[ncat,1]=-; RPS[ncat,8]=-
else echo_load ncat ncat -l 127.0.0.1 @PORT@ -k --exec /bin/cat; fi
for n in 1 8; do
  row "echo N=$n, trips/s: ipclab poll vs C epoll" "${RPS[ipclab-poll,$n]}" "${RPS[c-epoll,$n]}" rate "min 0.95"
  row "echo N=$n, trips/s: ipclab fork vs C fork" "${RPS[ipclab-fork,$n]}" "${RPS[c-fork,$n]}" rate "min 0.90"
  row "echo N=$n, trips/s: ipclab poll vs socat" "${RPS[ipclab-poll,$n]}" "${RPS[socat,$n]}" rate "min 1.20"
  row "echo N=$n, trips/s: ipclab poll vs ncat" "${RPS[ipclab-poll,$n]}" "${RPS[ncat,$n]}" rate "min 1.20"
done

# --- 5. pipe and socketpair ping-pong in C ---------------------------------
IPC=$WORK/ipc-local.json; ipc "$IPC" --mechanisms pipe,unix
for k in pipe:pipe unix:socketpair; do
  mech=${k%%:*}; cm=${k#*:}
  m="$mech 32 B RTT median, µs (C $cm ping-pong)"
  i=$(ival "$IPC" ipc-latency mechanism "$mech" median_us)
  if [ $CC_OK = no ]; then row "$m" "$i" - lat "skipped: no C compiler"; continue; fi
  say "== C ping-pong over $cm"
  p=$(timeout -k 2 30 "${PIN[@]}" "$CBIN/pingpong" "$cm" 32 200000) || { note "pingpong $cm failed"; p=-; }
  row "$m" "$i" "$p" lat "band $LAT"
done

# --- 6. ONC RPC NULL calls (lmbench lat_rpc) --------------------------------
IPC=$WORK/ipc-rpc.json; ipc "$IPC" --mechanisms rpc
for t in udp tcp; do RI[$t]=$(ival "$IPC" ipc-latency mechanism rpc-$t median_us); done
RPCB=""
if [ $RPC_OK = yes ]; then
  if ! rpcinfo -p 127.0.0.1 >/dev/null 2>&1; then
    if [ $ROOT = yes ] && ! pgrep -x rpcbind >/dev/null; then
      say "== starting rpcbind -f -w (stopped at the end)"
      start rpcbind tcp 111 rpcbind -f -w && RPCB=$SPID
    fi
    rpcinfo -p 127.0.0.1 >/dev/null 2>&1 || RPC_OK=no
  fi
  [ $RPC_OK = no ] && note "no rpcbind answers on 127.0.0.1 (and none could be started): RPC rows skipped"
fi
for t in udp tcp; do RP[$t]=-; done
if [ $RPC_OK = yes ]; then
  setsid "${PIN[@]}" "$CBIN/nullrpc_server" >"$WORK/rpc.log" 2>&1 &
  PIDS="$! $PIDS"; SPID=$!
  for _ in $(seq 50); do grep -q ready "$WORK/rpc.log" && break; kill -0 $SPID 2>/dev/null || break; sleep 0.1; done
  if grep -q ready "$WORK/rpc.log"; then
    for t in udp tcp; do
      say "== RPC NULL calls over $t (tirpc)"
      RP[$t]=$(timeout -k 2 30 "${PIN[@]}" "$CBIN/nullrpc_client" $t 200000) || { note "nullrpc_client $t failed"; RP[$t]=-; }
    done
  else note "nullrpc_server: $(tr '\n' ' ' <"$WORK/rpc.log")"; fi
  stop "$SPID"
fi
[ -n "$RPCB" ] && stop "$RPCB"
for t in udp tcp; do
  if [ "$RPC_OK" = yes ]; then row "RPC NULL call over $t median, µs (rpcgen + tirpc)" "${RI[$t]}" "${RP[$t]}" lat "ref $LAT"
  else row "RPC NULL call over $t median, µs (rpcgen + tirpc)" "${RI[$t]}" - lat "skipped (see notes)"; fi
done

}
for r in $(seq "$ROUNDS"); do
  say "=== round $r of $ROUNDS"
  measure_round
done

# --- the table --------------------------------------------------------------
[ -s "$WORK/notes" ] && { echo "notes:"; cat "$WORK/notes"; }
python3 - "$ROWS" <<'EOF'
import sys
def num(s):
    try: return float(s)
    except ValueError: return None
def fmt(v): return "-" if v is None else "%.0f" % v if v >= 1000 else "%.2f" % v if v >= 1 else "%.3f" % v
import statistics
order, seen = [], {}
for line in open(sys.argv[1]):
    m, i, p, kind, target = line.rstrip("\n").split("\t")
    if m not in seen:
        order.append(m)
        seen[m] = (kind, target, [])
    seen[m][2].append((num(i), num(p)))
rows = []
for m in order:
    kind, target, runs = seen[m]
    ii = [i for i, _ in runs if i is not None]
    pp = [p for _, p in runs if p is not None]
    rs = [i / p for i, p in runs if i is not None and p]
    i = statistics.median(ii) if ii else None
    p = statistics.median(pp) if pp else None
    r = statistics.median(rs) if rs else None
    span = "%.2f–%.2f" % (min(rs), max(rs)) if len(rs) > 1 else "-"
    t = target.split()
    if t[0] == "band":
        goal = "%s–%s× %s" % (t[1], t[2], "(±%d%%)" % round((float(t[2]) - 1) * 100))
        ok = r is not None and float(t[1]) <= r <= float(t[2])
    elif t[0] == "ref":  # no goal was set for this row: only say where it falls
        goal = "no goal; ±%d%%" % round((float(t[2]) - 1) * 100)
        ok = None if r is None else ("inside" if float(t[1]) <= r <= float(t[2]) else "outside")
    elif t[0] == "min":
        goal = "≥ %s×" % t[1]
        ok = r is not None and r >= float(t[1])
    else:
        goal, ok = target, None
    if r is None: verdict = goal if t[0] not in ("band", "min", "ref") else goal + ": no figure"
    elif ok is None: verdict = goal
    elif isinstance(ok, str): verdict = goal + ": " + ok
    else: verdict = goal + (": met" if ok else ": NOT met")
    rows.append((m + (" ↓" if kind == "lat" else " ↑"), fmt(i), fmt(p), "-" if r is None else "%.3f" % r, span, verdict))
head = ("measure (↓ lower is better, ↑ higher)", "ipclab", "peer", "ratio", "range", "target")
w = [max(len(x[k]) for x in rows + [head]) for k in range(6)]
print("\nratio = ipclab ÷ peer, the median over the rounds (range: the lowest and highest"
      " round); figures are medians too. For ↓ rows (µs, ms) below 1 means ipclab is faster;"
      " for ↑ rows (MB/s, trips/s) above 1 means ipclab is faster")
for n, x in enumerate([head] + rows):
    print(" | ".join(x[k].ljust(w[k]) if k in (0, 5) else x[k].rjust(w[k]) for k in range(6)).rstrip())
    if n == 0: print("-+-".join("-" * w[k] for k in range(6)))
EOF
