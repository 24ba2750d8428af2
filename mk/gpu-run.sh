#!/usr/bin/env bash
# A full-profile run of every chapter on an offline GPU server whose torch lives in a virtual
# environment (the lent H200s: /opt/torch/.venv), started in the background so that it can
# outlive a command's time limit. Prepare on a machine with internet:
#   make wheelhouse WHEEL_EXTRAS=run WHEEL_SKIP_FROM=mk/gpu-image-packages.txt   # ~16 MiB
#   .venv/bin/python -m pi05perf.peers wheels        # chapter 9's lerobot + torchao: wheelhouse/peers, ~19 MiB
# then, on the GPU server, in a copy of the tree with wheelhouse/ (no .git there: pass the commit):
#   PI05PERF_GIT_COMMIT=<hash> bash mk/gpu-run.sh start [CHAPTER ...]   # installs offline, starts the run
#                                                         # (every chapter, or the ones named, in toc order)
#   (two GPUs and no chapters named: chapters 7-8 run on the second GPU beside the rest)
#   bash mk/gpu-run.sh status                               # which chapters are done, failures
#   bash mk/gpu-run.sh collect DIR                          # data/results + data/notebooks + log as one tarball
# The HTML is then built anywhere from the committed notebooks (`make book`).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-/opt/torch/.venv/bin/python}
LOG=_build/gpu-run.log
case "${1:-status}" in
start)
  : "${PI05PERF_GIT_COMMIT:?set PI05PERF_GIT_COMMIT to the commit this tree is}"
  mkdir -p _build
  make install PYTHON="$PYTHON" WHEELHOUSE=wheelhouse EXTRAS=run
  if compgen -G "wheelhouse/peers/*.whl" >/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --target /tmp/peers wheelhouse/peers/*.whl
    export PI05PERF_PEERS=/tmp/peers
  fi
  export PI05PERF_GIT_COMMIT PYTHONUNBUFFERED=1
  shift
  run="setsid nohup bash -c"
  book=".venv/bin/python -m pi05perf.book execute --profile full"
  # one run measures its ceilings once: measured here, before any chapter, and read by all
  .venv/bin/python -c "from pi05perf import ceilings, params; ceilings.measure_once(params.resolve('ch02_roofline', profile='full'))"
  if [ $# -eq 0 ] && [ "$(nvidia-smi -L | wc -l)" -ge 2 ]; then
    # two GPUs of one host: chapters 7-8 on the second, the rest on the first; chapter 4 reads
    # chapter 8's FP8 result, so it runs last, once chapter 8 is done
    rm -f _build/ch08.done
    $run "CUDA_VISIBLE_DEVICES=1 $book ch07_pipeline ch08_roads_to_20hz > ${LOG%.log}-b.log 2>&1; echo \"gpu-run rc=\$?\" >> ${LOG%.log}-b.log; touch _build/ch08.done" >/dev/null 2>&1 </dev/null &
    $run "export CUDA_VISIBLE_DEVICES=0; { $book ch01_flops ch02_roofline ch03_prefill_breakdown ch05_int4_fp4 ch06_triton ch09_peers; while [ ! -e _build/ch08.done ]; do sleep 5; done; $book ch04_fp8_tensorrt; } > $LOG 2>&1; echo \"gpu-run rc=\$?\" >> $LOG" >/dev/null 2>&1 </dev/null &
  else
    $run "$book $* > $LOG 2>&1; echo \"gpu-run rc=\$?\" >> $LOG" >/dev/null 2>&1 < /dev/null &
  fi
  echo "started at $(date -u +%H:%M:%S); follow with: bash mk/gpu-run.sh status";;
status)
  for f in _build/gpu-run*.log; do echo "-- $f"; grep -E "^== (executing|committed)|^!! |done in|gpu-run rc=" "$f" | tail -20; done;;
collect)
  tar czf "${2:?collect DIR}/gpu-run.tgz" data/results data/notebooks _build/gpu-run*.log _build/ceilings
  ls -la "$2";;
*)
  echo "usage: bash mk/gpu-run.sh start|status|collect DIR" >&2; exit 2;;
esac
