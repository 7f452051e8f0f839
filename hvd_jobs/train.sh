#!/usr/bin/env bash
# Data-parallel training on NP Horovod ranks (horovodrun --gloo) of any training module built on
# tf_usaug.distributed (init, scaled learning rate, DistributedOptimizer / DistributedGradientTape,
# broadcast, rank-0 checkpoints: see docs/scale-out.md).
# Runs `python -m MODULE ARGS`, the module given as the first argument.
#   NP=8 hvd_jobs/train.sh myproject.train_classifier --data aug/ --out runs/classifier
#   DRY_RUN=1 NP=8 hvd_jobs/train.sh myproject.train_classifier ...   # print the command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
if [[ $# -lt 1 || $1 == -* ]]; then
  echo "error: usage: hvd_jobs/train.sh MODULE [ARGS...] (the training module to run on every rank)" >&2
  exit 2
fi
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
module="$1"
shift
MODULE="" hvd_launch "$module" "$@"
