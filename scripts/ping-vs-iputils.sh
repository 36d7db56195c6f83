#!/bin/sh
# Side-by-side RTT of `ipclab ping` and iputils ping, interleaved, in one run.
# Needs root (raw sockets), iputils-ping and bc; builds nothing: point BIN at
# a release build (cargo build --release).
#   sudo scripts/ping-vs-iputils.sh            # 6 rounds of -c 20 -i 0.2 to 127.0.0.1
#   N=10 C=50 I=0.1 HOST=::1 sudo -E scripts/ping-vs-iputils.sh
#   CPU=1 … pins both to CPU 1; CPU= (empty) leaves placement to the scheduler
# Both run pinned to the same CPU (taskset -c $CPU) as SPEC asks of every
# benchmark: unpinned, the scheduler places them differently (ipclab stays
# where its poll timer fires, iputils' SO_RCVTIMEO timer moves it between
# CPUs), which on a small VM moves single rounds by ±10%. The placement is
# printed with the figures. Prints each round's average RTTs (ms) and their
# ratio ipclab/iputils, then the ratio of the averages over all rounds.
set -eu
BIN=${BIN:-$(dirname "$0")/../target/release/ipclab}
N=${N:-6}; C=${C:-20}; I=${I:-0.2}; HOST=${HOST:-127.0.0.1}; CPU=${CPU-0}
avg() { sed -n 's/.*rtt min\/avg\/max\/mdev = [0-9.]*\/\([0-9.]*\)\/.*/\1/p'; }
pin=""
if [ -z "$CPU" ]; then
  placement="not pinned (CPU= given): the scheduler places each process"
elif command -v taskset >/dev/null 2>&1; then
  pin="taskset -c $CPU"
  placement="both pinned to CPU $CPU (taskset -c $CPU)"
else
  placement="not pinned: taskset not found (util-linux); figures vary more between rounds"
  echo "warning: taskset not found, running unpinned" >&2
fi
echo "placement: $placement; $(nproc) CPUs online"
echo "ipclab: $pin $BIN --quiet ping -c $C -i $I $HOST"
echo "iputils: $pin ping -q -c $C -i $I $HOST"
sa=0; sb=0
for k in $(seq 1 "$N"); do
  a=$($pin "$BIN" --quiet ping -c "$C" -i "$I" "$HOST" | avg)
  b=$($pin ping -q -c "$C" -i "$I" "$HOST" | avg)
  echo "round $k: ipclab $a ms, iputils $b ms, ratio $(echo "scale=3; $a/$b" | bc)"
  sa=$(echo "$sa+$a" | bc); sb=$(echo "$sb+$b" | bc)
done
echo "mean: ipclab $(echo "scale=4; $sa/$N" | bc) ms, iputils $(echo "scale=4; $sb/$N" | bc) ms, ratio $(echo "scale=3; $sa/$sb" | bc) ($placement)"
