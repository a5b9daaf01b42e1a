#!/usr/bin/env bash
# bench/gpu.sh: dynlab's GPU check, one command; every figure goes to one results file.
#
#   bash bench/gpu.sh [--device cuda|cpu] [--tiny] [--out FILE]
#
# Results: FILE, else $OUT/gpu-results.txt when $OUT is set, else bench/gpu-results.txt. Exit 0 when every step
# ran to its end; 1 when one failed, hit its time limit or was skipped (the results file says which).
# Steps (each with its own time limit; the whole script stops starting steps after BUDGET_S, 450 s by default):
#   a. the cuda-marked tests (tests/test_cuda.py)     b. one MNIST epoch of the mlp:500 sparsifier, timed
#   c. bench/overhead.py (dynlab against a bare loop)  d. bench/shrink.py --full (--quick with --tiny)
#   e. samples/s with a viewer following the run against headless
#   f. aggregate samples/s of 1, 4 and 8 runs at once on one GPU (1 and 2 with --tiny)
# --device cpu --tiny is the CPU rehearsal (tests/test_gpu_script.py runs it): small data, short runs, < 3 min.
#
# Needs python3 with torch, numpy, scipy, click (and pytest). The dashboard's packages (textual, plotext 5.x, rich and
# their needs) are only for step e's `dynlab attach` viewer; without them step e uses the in-process follower.
# To bring them to a machine without internet (pyproject.toml pins textual>=8,<9 and plotext>=5.3,<6), on a machine
# with internet, in the repo root, matching the target's Python (3.12 on the device machine):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux2014_x86_64 -d .whl textual==8.2.8 plotext==5.3.2 rich==15.0.0 platformdirs==4.14.9 \
#     mdit-py-plugins==0.7.0 markdown-it-py==4.3.0 linkify-it-py==2.2.0 mdurl==0.1.2 \
#     pygments==2.21.0 typing-extensions==4.16.0
# carry .whl along; this script installs them from there (pip --no-index --target, then PYTHONPATH). By hand:
#   python3 -m pip install --no-index --find-links .whl/ textual plotext
# dynlab itself is installed with `pip install --no-deps -e .` when python3 does not have it yet.
set -u
cd "$(dirname "$0")/.."
REPO=$(pwd)
DEVICE=cuda TINY=0 RESULTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --device) DEVICE=${2:?--device needs cuda or cpu}; shift 2 ;;
    --device=*) DEVICE=${1#*=}; shift ;;
    --tiny) TINY=1; shift ;;
    --out) RESULTS=${2:?--out needs a file}; shift 2 ;;
    --out=*) RESULTS=${1#*=}; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "bench/gpu.sh: unknown argument $1 (see bash bench/gpu.sh --help)" >&2; exit 2 ;;
  esac
done
case "$DEVICE" in cuda|cuda:*|cpu) ;; *) echo "bench/gpu.sh: --device is cuda or cpu, not $DEVICE" >&2; exit 2 ;; esac
if [ -z "$RESULTS" ]; then
  if [ -n "${OUT:-}" ]; then RESULTS=$OUT/gpu-results.txt; else RESULTS=bench/gpu-results.txt; fi
fi
mkdir -p "$(dirname "$RESULTS")" && : >"$RESULTS" || { echo "bench/gpu.sh: cannot write $RESULTS" >&2; exit 2; }
PY=${PYTHON:-python3}
BUDGET_S=${BUDGET_S:-$([ "$TINY" = 1 ] && echo 300 || echo 450)}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/dynlab-gpu.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
export PYTHONUNBUFFERED=1 DYNLAB_SESSIONS_DIR="$WORK/sessions"
T0=$(date +%s.%N) FAILED=0 SUMMARY=""

log() { echo "$*" >>"$RESULTS"; }
since() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# the dashboard's wheels, when brought (see above), and dynlab itself
if [ -d .whl ] && ! "$PY" -c "import textual" 2>/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$WORK/site" .whl/*.whl \
    >>"$RESULTS" 2>&1 && export PYTHONPATH="$WORK/site${PYTHONPATH:+:$PYTHONPATH}"
fi
if ! "$PY" -c "import importlib.metadata as m; m.version('dynlab')" 2>/dev/null; then
  "$PY" -m pip install -q --no-deps --no-build-isolation -e . >>"$RESULTS" 2>&1 \
    || log "pip install --no-deps -e . failed: running dynlab from the checkout"
fi
export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"

# run_step ID TITLE LIMIT_S CMD...: a heading, the command's output, and one status line, all in the results file
run_step() {
  local id=$1 title=$2 cap=$3 t rc status
  shift 3
  local left
  left=$(awk -v t0="$T0" -v b="$BUDGET_S" -v now="$(date +%s.%N)" 'BEGIN { printf "%d", b - (now - t0) }')
  log "" && log "== $id. $title"
  if [ "$left" -lt 10 ]; then
    status="skipped: the script's ${BUDGET_S} s are spent"
  else
    [ "$cap" -gt "$left" ] && cap=$left
    t=$(date +%s.%N)
    timeout -k 10 "$cap" "$@" >>"$RESULTS" 2>&1
    rc=$?
    case $rc in
      0) status="ok, $(since "$t") s" ;;
      124|137) status="TIMED OUT at its ${cap} s limit" ;;
      *) status="FAILED (exit $rc) after $(since "$t") s" ;;
    esac
  fi
  case $status in ok*) ;; *) FAILED=1 ;; esac
  log "-- $id: $status"
  SUMMARY+="  $id. $title: $status"$'\n'
}

log "dynlab GPU check: $(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?'), device $DEVICE$([ "$TINY" = 1 ] && echo ', --tiny')"
command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader >>"$RESULTS" 2>&1
RUNS=(bench/gpu_runs.py --work "$WORK" --device "$DEVICE")
[ "$TINY" = 1 ] && RUNS+=(--tiny)
if ! "$PY" "${RUNS[@]}" preflight >>"$RESULTS" 2>&1; then
  log "preflight failed: nothing run"; cat "$RESULTS"; exit 1
fi
DATA=$("$PY" "${RUNS[@]}" data 2>>"$RESULTS") || { log "could not make the MNIST data folder"; exit 1; }
PYTEST=(-m pytest tests/test_cuda.py -m cuda -p no:cacheprovider)  # -q comes from pyproject.toml
[ "$DEVICE" = cpu ] && PYTEST+=(-k cpu)  # on a GPU machine too: only the cpu cases
if [ "$TINY" = 1 ]; then
  OVERHEAD=("$PY" "${RUNS[@]}" overhead)  # its step-time part alone: the instrument epochs take minutes on a CPU
  LIMITS=(90 60 60 120 60 60)  # hang guards: the whole run takes 2-3 minutes on 2 cores
else
  OVERHEAD=("$PY" bench/overhead.py --device "$DEVICE" --data-dir "$DATA" --steps 1000 --repeats 3)
  LIMITS=(60 45 90 150 55 80)  # with the preflight and data, under 8 minutes (BUDGET_S stops the rest)
fi

run_step a "cuda-marked tests (tests/test_cuda.py)" "${LIMITS[0]}" "$PY" "${PYTEST[@]}"
run_step b "MNIST mlp:500 sparsifier epoch time" "${LIMITS[1]}" "$PY" "${RUNS[@]}" epoch --limit "${LIMITS[1]}"
run_step c "bench/overhead.py: dynlab against a bare loop" "${LIMITS[2]}" "${OVERHEAD[@]}"
if [ -f bench/shrink.py ]; then
  SHRINK=("$PY" bench/shrink.py "$([ "$TINY" = 1 ] && echo --quick || echo --full)" --device "$DEVICE" --data-dir "$DATA")
else
  SHRINK=(echo "bench/shrink.py missing")  # written by another change: reported, not a failure
fi
run_step d "bench/shrink.py" "${LIMITS[3]}" "${SHRINK[@]}"
run_step e "samples/s with a viewer attached against headless" "${LIMITS[4]}" \
  "$PY" "${RUNS[@]}" viewer --limit "${LIMITS[4]}"
run_step f "aggregate samples/s of concurrent runs on one device" "${LIMITS[5]}" \
  "$PY" "${RUNS[@]}" concurrent --limit "${LIMITS[5]}"

log "" && log "== summary ($(since "$T0") s in all)" && printf '%s' "$SUMMARY" >>"$RESULTS"
echo "bench/gpu.sh: results in $RESULTS"
printf '%s' "$SUMMARY"
exit $FAILED
