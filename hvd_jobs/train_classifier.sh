#!/usr/bin/env bash
# The task classifier (paper 002's ResNet50 recipe; efficientnetb2 per paper 004; small for CPUs),
# data-parallel: the global batch is split over the ranks, rank 0 writes RUN/ (docs/classifier.md).
# Runs `python -m tf_usaug.train classifier ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/train_classifier.sh --data data/busi --augmented aug/ --out runs/r50_aug
#   NP=8 hvd_jobs/train_classifier.sh --data data/busi --out runs/r50_aug --resume   # after a kill
#   DRY_RUN=1 NP=8 hvd_jobs/train_classifier.sh ...   # print the horovodrun command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
hvd_launch tf_usaug.train classifier "$@"
