#!/usr/bin/env bash
# Paper 000's multitask segmentation + classification network (FeatAug, MixStyleAug, MaskAug),
# data-parallel: the global batch is split over the ranks, rank 0 writes RUN/ (docs/multitask.md).
# Runs `python -m tf_usaug.train multitask ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/train_multitask.sh --data data/scanner_a --styles data/refs --mixstyle --out runs/mt
#   NP=8 hvd_jobs/train_multitask.sh --data data/scanner_a --out runs/mt --resume   # after a kill
#   DRY_RUN=1 NP=8 hvd_jobs/train_multitask.sh ...   # print the horovodrun command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
hvd_launch tf_usaug.train multitask "$@"
