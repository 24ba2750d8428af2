#!/usr/bin/env bash
# A full-profile run of every chapter on an offline GPU server whose torch lives in a virtual
# environment (the lent H200s: /opt/torch/.venv), started in the background so that it can
# outlive a command's time limit. Prepare on a machine with internet:
#   make wheelhouse WHEEL_EXTRAS=run,book WHEEL_SKIP_FROM=mk/gpu-image-packages.txt   # ~47 MiB
#   .venv/bin/python -m pi05perf.peers wheels        # chapter 9's lerobot + torchao: wheelhouse/peers, ~19 MiB
#   (both exceed one call's 64 MiB on the lent machines: carry run-only wheels with the peers,
#    WHEEL_EXTRAS=run, ~16 MiB, and build the site in a later call)
# then, on the GPU server, in a copy of the tree with wheelhouse/ (pass the commit: a copy's
# .git may be stale, and the variable wins over it):
#   PI05PERF_GIT_COMMIT=<hash> bash mk/gpu-run.sh start [CHAPTER ...]   # installs offline, starts the run
#                                                         # (every chapter, or the ones named, in toc order)
#   (two GPUs and no chapters named: chapters 7-8 run on the second GPU beside the rest)
#   bash mk/gpu-run.sh status                               # which chapters are done, failures
#   bash mk/gpu-run.sh html                                 # the site from this run (wheels: WHEEL_EXTRAS=run,book)
#   bash mk/gpu-run.sh collect DIR                          # data/results + data/notebooks + logs as one tarball
# The run works in an ignored copy of the tree, _build/gpu-tree: the lent machines re-sync the
# checkout at every call and delete what a run wrote under tracked paths in between (the
# 2026-11-30 run lost chapter 1 and chapter 8's view of chapter 7 that way).
# The HTML is then built anywhere from the committed notebooks (`make book`, or `make html` there).
set -euo pipefail
cd "$(dirname "$0")/.."
HERE=$PWD
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
TREE=$HERE/_build/gpu-tree
LOG=$HERE/_build/gpu-run.log
case "${1:-status}" in
start)
  : "${PI05PERF_GIT_COMMIT:?set PI05PERF_GIT_COMMIT to the commit this tree is}"
  mkdir -p _build
  make install PYTHON="$PYTHON" WHEELHOUSE=wheelhouse EXTRAS=run
  if compgen -G "wheelhouse/peers/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/peers wheelhouse/peers/*.whl
    export PI05PERF_PEERS=/tmp/peers
  fi
  rm -rf "$TREE" && mkdir -p "$TREE"
  tar cf - --exclude=./_build --exclude=./.venv --exclude=./wheelhouse --exclude=./.git . | tar xf - -C "$TREE"
  mkdir -p "$TREE/_build" && cp -r _build/ceilings "$TREE/_build/" 2>/dev/null || true
  # the copy's lib/ wins over the editable install, so results and notebooks land in the copy
  export PI05PERF_GIT_COMMIT PYTHONUNBUFFERED=1 PYTHONPATH=$TREE/lib
  shift
  cd "$TREE"
  run="setsid nohup bash -c"
  book="$HERE/.venv/bin/python -m pi05perf.book execute --profile full"
  # one run measures its ceilings once: measured here, before any chapter, and read by all
  "$HERE/.venv/bin/python" -c "from pi05perf import ceilings, params; ceilings.measure_once(params.resolve('ch02_roofline', profile='full'))"
  if [ $# -eq 0 ] && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    # two GPUs of one host: chapters 7, 8 and then 4 on the second (chapter 4 reads chapter 8's
    # FP8 result, and chapter 3's, which the first GPU has by then), the rest on the first, where
    # chapter 9 waits for chapter 7 (it reads chapter 7's floor); about 8 and 10 minutes on H200s
    done7=$TREE/_build/ch07.done
    $run "export CUDA_VISIBLE_DEVICES=1; { $book ch07_pipeline; touch $done7; $book ch08_roads_to_20hz && $book ch04_fp8_tensorrt; } > ${LOG%.log}-b.log 2>&1; echo \"gpu-run rc=\$?\" >> ${LOG%.log}-b.log" >/dev/null 2>&1 </dev/null &
    $run "export CUDA_VISIBLE_DEVICES=0; { $book ch01_flops ch02_roofline ch03_prefill_breakdown ch05_int4_fp4 ch06_triton; while [ ! -e $done7 ]; do sleep 5; done; $book ch09_peers; } > $LOG 2>&1; echo \"gpu-run rc=\$?\" >> $LOG" >/dev/null 2>&1 </dev/null &
  else
    $run "$book $* > $LOG 2>&1; echo \"gpu-run rc=\$?\" >> $LOG" >/dev/null 2>&1 < /dev/null &
  fi
  echo "started at $(date -u +%H:%M:%S) in $TREE; follow with: bash mk/gpu-run.sh status";;
status)
  for f in _build/gpu-run*.log; do echo "-- $f"; grep -E "^== (executing|committed)|^!! |done in|gpu-run rc=" "$f" | tail -20; done;;
html)
  # the site from this run's notebooks (copied into the checkout) and the committed ones of other devices
  cp -r "$TREE/data/results/." data/results/ && cp -r "$TREE/data/notebooks/." data/notebooks/
  make html PYTHON="$PYTHON" WHEELHOUSE=wheelhouse EXTRAS=run,book;;
collect)
  out=$(cd "${2:?collect DIR}" && pwd)
  tar czf "$out/gpu-run.tgz" -C "$TREE" data/results data/notebooks _build/ceilings -C "$HERE" $(ls _build/gpu-run*.log)
  ls -la "$out";;
*)
  echo "usage: bash mk/gpu-run.sh start|status|html|collect DIR" >&2; exit 2;;
esac
