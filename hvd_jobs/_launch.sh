# shellcheck shell=bash
# Sourced by hvd_jobs/*.sh: run `python -m MODULE ARGS` on NP Horovod ranks with horovodrun
# (Gloo controller, no MPI), printing the exact command before exec'ing it.
#
# Environment (all optional):
#   NP          ranks (default: the GPUs nvidia-smi lists, else 1)
#   HOSTS       horovodrun -H value (default localhost:NP; e.g. node1:8,node2:8, which
#               needs passwordless ssh between the nodes)
#   PYTHON      interpreter of every rank (default: the repository's .venv/bin/python when
#               present, else python3, e.g. the container's)
#   HOROVODRUN  launcher (default: horovodrun beside PYTHON, else on PATH)
#   EXTRA       extra horovodrun flags, split on spaces (e.g. "--verbose --timeline-filename t.json")
#   MODULE      run this module instead of the script's own (e.g. a renamed trainer)
#   DRY_RUN=1   print the command and exit without running it
#   TF_CPP_MIN_LOG_LEVEL  TensorFlow's C++ log level (default 3, as tf_usaug sets on import)

hvd_launch() {
  local module="${MODULE:-$1}"
  shift
  local repo
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if [[ -z ${PYTHON:-} ]]; then
    if [[ -x $repo/.venv/bin/python ]]; then PYTHON="$repo/.venv/bin/python"; else PYTHON=python3; fi
  fi
  if [[ -z ${NP:-} ]]; then
    NP=0
    if command -v nvidia-smi >/dev/null 2>&1; then
      NP=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
    fi
    ((NP > 0)) || NP=1
  fi
  [[ $NP =~ ^[1-9][0-9]*$ ]] || { echo "error: NP must be a positive integer, got '$NP'" >&2; exit 2; }
  local hosts="${HOSTS:-localhost:$NP}"
  local runner="${HOROVODRUN:-}"
  if [[ -z $runner ]]; then
    runner="$(dirname "$(command -v "$PYTHON" || echo "$PYTHON")")/horovodrun"
    [[ -x $runner ]] || runner="$(command -v horovodrun || echo horovodrun)"
  fi
  local -a extra
  read -r -a extra <<<"${EXTRA:-}"
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
  [[ -d $repo/tf_usaug ]] && export PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"

  local -a cmd=("$runner" -np "$NP" -H "$hosts" --gloo "${extra[@]}" "$PYTHON" -m "$module" "$@")
  local quoted
  printf -v quoted '%q ' "${cmd[@]}"
  echo "+ ${quoted% }" >&2
  if [[ ${DRY_RUN:-0} == 1 ]]; then
    exit 0
  fi
  command -v "$runner" >/dev/null 2>&1 \
    || { echo "error: horovodrun not found ($runner); set HOROVODRUN or install horovod" >&2; exit 2; }
  exec "${cmd[@]}"
}
