#!/usr/bin/env bash
# Augmentation (paper 002: NST + SRAD, or traditional/srad) on every rank's share of the items.
# Runs `python -m tf_usaug.augment ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/generate.sh --content data/busi --per-image 375 --out aug/
#   DRY_RUN=1 NP=8 hvd_jobs/generate.sh ...     # print the horovodrun command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
hvd_launch tf_usaug.augment "$@"
