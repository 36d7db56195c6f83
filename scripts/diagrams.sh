#!/usr/bin/env bash
# Regenerates the diagrams the README shows, from fresh runs of this
# checkout: docs/pipe.svg (`ipclab pipe`) and docs/tcp-demo.svg
# (`ipclab tcp demo`). Run it after changing the labs or the drawing, and
# commit the SVGs with the change:
#
#   scripts/diagrams.sh
#
# Builds with cargo (debug) unless IPCLAB=/path/to/ipclab is given.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bin=${IPCLAB:-}
if [ -z "$bin" ]; then
  cargo build --quiet
  bin="$root/target/debug/ipclab"
fi
mkdir -p docs
"$bin" --diagram docs/pipe.svg pipe > /dev/null
"$bin" --diagram docs/tcp-demo.svg tcp demo > /dev/null
echo "written: docs/pipe.svg docs/tcp-demo.svg"
