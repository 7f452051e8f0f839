#!/usr/bin/env bash
# Training the ResNet50 classifier of paper 002 (data-parallel, learning rate scaled by ranks).
# Runs `python -m tf_usaug.train_classifier ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/train_classifier.sh --data aug/ --out runs/classifier
#   DRY_RUN=1 NP=8 hvd_jobs/train_classifier.sh ...     # print the horovodrun command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
hvd_launch tf_usaug.train_classifier "$@"
