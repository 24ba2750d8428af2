#!/usr/bin/env bash
# A full-profile run of every chapter on an offline GPU server whose torch lives in a virtual
# environment (the lent H200s: /opt/torch/.venv), started in the background so that it can
# outlive a command's time limit. Prepare on a machine with internet:
#   make wheelhouse WHEEL_EXTRAS=run WHEEL_SKIP_FROM=mk/gpu-image-packages.txt   # ~16 MiB
#   .venv/bin/python -m pi05perf.peers wheels        # chapter 9's lerobot + torchao: wheelhouse/peers, ~19 MiB
# then, on the GPU server, in a copy of the tree with wheelhouse/ (no .git there: pass the commit):
#   PI05PERF_GIT_COMMIT=<hash> bash mk/gpu-run.sh start [CHAPTER ...]   # installs offline, starts the run
#                                                         # (every chapter, or the ones named, in toc order)
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
  setsid nohup bash -c ".venv/bin/python -m pi05perf.book execute --profile full $* > $LOG 2>&1; echo \"gpu-run rc=\$?\" >> $LOG" \
    >/dev/null 2>&1 < /dev/null &
  echo "started at $(date -u +%H:%M:%S); follow with: bash mk/gpu-run.sh status";;
status)
  grep -E "^== (executing|committed)|^!! |done in|gpu-run rc=" "$LOG" | tail -40 || echo "no log yet: $LOG";;
collect)
  tar czf "${2:?collect DIR}/gpu-run.tgz" data/results data/notebooks "$LOG"
  ls -la "$2";;
*)
  echo "usage: bash mk/gpu-run.sh start|status|collect DIR" >&2; exit 2;;
esac
