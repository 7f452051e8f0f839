#!/usr/bin/env bash
# A GAN (wgan: paper 003's improved alpha-WGAN-GP; stylegan2: paper 004), data-parallel: the
# global batch is split over the ranks, every gradient averaged (DistributedGradientTape),
# rank 0 writes RUN/ (docs/gan.md).
# Runs `python -m tf_usaug.train MODEL ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/train_gan.sh wgan --data data/busi --out runs/wgan --per-class
#   NP=8 hvd_jobs/train_gan.sh wgan --data data/busi --out runs/wgan --per-class --resume  # after a kill
#   NP=8 hvd_jobs/train_gan.sh stylegan2 --data data/busi --out runs/sg2
#   DRY_RUN=1 NP=8 hvd_jobs/train_gan.sh wgan ...   # print the horovodrun command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
case ${1:-} in
  wgan | stylegan2) ;;
  *) echo "error: the first argument is the model: wgan or stylegan2 (got '${1:-}')" >&2; exit 2 ;;
esac
hvd_launch tf_usaug.train "$@"
