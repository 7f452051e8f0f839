# shellcheck shell=bash
# Shared by slurm/*.sbatch (sourced, after the template has found REPO_DIR): choose the
# Python, build the job command, and launch Horovod ranks with horovodrun or srun.
#
# Variables read here (all optional):
#   PYTHON      interpreter (default: REPO_DIR/.venv/bin/python when present, else python3;
#               REPO_DIR/.venv is activated when present)
#   JOB_CMD     the command every rank runs (default: "$PYTHON -m tf_usaug.augment");
#               split on spaces
#   LAUNCHER    horovodrun (default; ranks on other nodes are started over ssh) or srun
#               (slurm/hvd_slurm.py: Gloo rendezvous + srun, no ssh, works with pyxis)
#   HOSTS       horovodrun -H value (default: NP slots of the allocation, filled in
#               SLURM_JOB_NODELIST order; horovodrun starts one rank per listed slot)
#   EXTRA       extra horovodrun flags, e.g. "--timeline-filename tl.json"
#   HVD_SRUN_ARGS  extra srun flags for LAUNCHER=srun, e.g. "--gpus-per-task=1"
#   TF_CPP_MIN_LOG_LEVEL  TensorFlow C++ log level (default 3, as tf_usaug sets on import:
#               hides the spurious cuDNN/cuFFT/cuBLAS "factory" errors; 0 shows all)

usaug_die() {
  echo "error: $*" >&2
  exit 2
}

usaug_stage() {
  echo "==> $*"
}

# Print a command the way it will run (shell-quoted), prefixed with "+ ".
usaug_show() {
  local quoted
  printf -v quoted '%q ' "$@"
  echo "+ ${quoted% }"
}

# cd to the repository, activate .venv, pick PYTHON, quieten TensorFlow, check the package.
usaug_setup() {
  [[ -d $REPO_DIR ]] || usaug_die "REPO_DIR=$REPO_DIR is not a folder"
  cd "$REPO_DIR" || usaug_die "cannot cd to $REPO_DIR"
  if [[ -z ${PYTHON:-} && -f $REPO_DIR/.venv/bin/activate ]]; then
    # shellcheck disable=SC1091
    source "$REPO_DIR/.venv/bin/activate"
    PYTHON="$REPO_DIR/.venv/bin/python"
  fi
  PYTHON="${PYTHON:-$(command -v python3 || command -v python || true)}"
  [[ -n $PYTHON ]] || usaug_die "no python found; set PYTHON or create $REPO_DIR/.venv"
  if [[ -d $REPO_DIR/tf_usaug ]]; then
    export PYTHONPATH="$REPO_DIR${PYTHONPATH:+:$PYTHONPATH}"
  fi
  export TF_CPP_MIN_LOG_LEVEL="${TF_CPP_MIN_LOG_LEVEL:-3}"
  export PYTHONUNBUFFERED=1
  "$PYTHON" -c 'import tf_usaug' 2>/dev/null \
    || usaug_die "$PYTHON cannot import tf_usaug (set REPO_DIR to the repository or PYTHON to the container's python)"
  LAUNCHER="${LAUNCHER:-horovodrun}"
  case $LAUNCHER in
    horovodrun)
      HOROVODRUN="${HOROVODRUN:-$(dirname "$PYTHON")/horovodrun}"
      [[ -x $HOROVODRUN ]] || HOROVODRUN="$(command -v horovodrun || true)"
      [[ -n $HOROVODRUN ]] || usaug_die "horovodrun not found (install horovod, or LAUNCHER=srun)"
      ;;
    srun) command -v srun >/dev/null || usaug_die "LAUNCHER=srun but srun is not on PATH" ;;
    *) usaug_die "LAUNCHER must be horovodrun or srun, got '$LAUNCHER'" ;;
  esac
  read -r -a JOB_CMD_WORDS <<<"${JOB_CMD:-$PYTHON -m tf_usaug.augment}"
  usaug_stage "repo $REPO_DIR, python $PYTHON, launcher $LAUNCHER, job ${JOB_CMD_WORDS[*]}"
}

# Task slots of the allocation (SLURM_NTASKS; outside SLURM the GPUs, else the CPU cores).
usaug_max_np() {
  if [[ -n ${SLURM_NTASKS:-} ]]; then
    echo "$SLURM_NTASKS"
  else
    "$PYTHON" "$REPO_DIR/slurm/hvd_slurm.py" max-np
  fi
}

# usaug_launch NP ARG...: run JOB_CMD ARG... on NP Horovod ranks and wait for it.
usaug_launch() {
  local np=$1
  shift
  local -a cmd extra
  read -r -a extra <<<"${EXTRA:-}"
  if [[ $LAUNCHER == horovodrun ]]; then
    local hosts="${HOSTS:-$("$PYTHON" "$REPO_DIR/slurm/hvd_slurm.py" hosts -np "$np")}"
    cmd=("$HOROVODRUN" -np "$np" -H "$hosts" --gloo "${extra[@]}" "${JOB_CMD_WORDS[@]}" "$@")
  else
    cmd=("$PYTHON" "$REPO_DIR/slurm/hvd_slurm.py" run -np "$np" -- "${JOB_CMD_WORDS[@]}" "$@")
  fi
  usaug_show "${cmd[@]}"
  "${cmd[@]}"
}
