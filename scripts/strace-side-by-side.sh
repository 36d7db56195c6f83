#!/usr/bin/env bash
# Runs an ipclab lab under `strace -f -yy` and prints each step ipclab printed
# next to the line strace saw for it, matched by pid, name and order.
#
#   scripts/strace-side-by-side.sh pipe --fill
#   scripts/strace-side-by-side.sh fifo
#
# Needs strace and python3. Uses target/release/ipclab if built, else debug,
# else `ipclab` on PATH (override with IPCLAB=/path/to/ipclab).
set -euo pipefail
if [ $# -lt 1 ]; then
  echo "usage: $0 LAB [ARGS...]   e.g. $0 pipe --sigpipe" >&2
  exit 2
fi
command -v strace >/dev/null || { echo "strace is not installed (apt-get install strace)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is needed to pair the lines" >&2; exit 1; }
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${IPCLAB:-}
if [ -z "$bin" ]; then
  for b in "$root/target/release/ipclab" "$root/target/debug/ipclab"; do
    [ -x "$b" ] && { bin=$b; break; }
  done
fi
bin=${bin:-ipclab}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
strace -f -yy -qq -o "$tmp/strace.log" "$bin" --format json "$@" > "$tmp/steps.json" || true
python3 - "$tmp/steps.json" "$tmp/strace.log" <<'PY'
import json, re, sys
steps = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
steps = [s for s in steps if s.get("type") == "syscall"]
calls, pending = {}, {}
for raw in open(sys.argv[2]):
    m = re.match(r"(\d+)\s+(.*)", raw.rstrip("\n"))
    if not m:
        continue
    pid, rest = int(m.group(1)), m.group(2)
    if rest.startswith(("---", "+++")):
        continue
    if rest.endswith("<unfinished ...>"):
        pending[pid] = rest[: -len("<unfinished ...>")]
        continue
    r = re.match(r"<\.\.\. (\w+) resumed>(.*)", rest)
    if r:
        rest = pending.pop(pid, r.group(1) + "(") + r.group(2)
    name = rest.split("(", 1)[0]
    calls.setdefault(pid, []).append((name, rest))
def first_arg(line):
    a = line.split("(", 1)[1] if "(" in line else ""
    return re.sub(r"<.*", "", re.split(r"[,)]", a, maxsplit=1)[0]).strip()

# Pair each pid's steps with its strace lines from the end backwards: the
# runtime's start-up calls come before the first step, never after the last.
match = {}
by_pid = {}
for s in steps:
    by_pid.setdefault(s["pid"], []).append(s)
for pid, mine in by_pid.items():
    lst, cur = calls.get(pid, []), len(calls.get(pid, []))
    for s in sorted(mine, key=lambda s: -s["seq"]):
        fd = s["args"][0] if s["args"] and s["args"][0].isdigit() else None
        k = next((k for k in range(cur - 1, -1, -1)
                  if lst[k][0] == s["syscall"] and (fd is None or first_arg(lst[k][1]) == fd)), None)
        if k is not None:
            match[s["seq"]] = f"[{pid}] {lst[k][1]}"
            cur = k
width = 70
print(f"{'ipclab printed':<{width}} | strace -f -yy saw")
print("-" * width + "-+-" + "-" * width)
def ret(s):
    if s["ret"] is None:
        return "?"
    if s["syscall"] == "mmap" and s["ret"] > 0:  # an address: hex, as strace prints it
        return hex(s["ret"])
    return f"{s['ret']}" + (f" {s['errno']}" if s["errno"] else "")
for s in sorted(steps, key=lambda s: s["seq"]):
    mine = f"[{s['pid']}] {s['syscall']}({', '.join(s['args'])}) = " + ret(s)
    print(f"{mine[:width]:<{width}} | {match.get(s['seq'], '(no matching strace line!)')}")
PY
