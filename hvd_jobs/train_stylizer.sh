#!/usr/bin/env bash
# The feed-forward stylizer (Johnson et al.'s transform network with paper 001's noise injection,
# trained with the NST losses), data-parallel: the global batch is split over the ranks, rank 0
# writes RUN/ (docs/stylizer.md).
# Runs `python -m tf_usaug.train stylizer ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/train_stylizer.sh --styles data/scanner_b --content data/busi --out runs/sty
#   NP=8 hvd_jobs/train_stylizer.sh --styles data/scanner_b --out runs/sty --resume   # after a kill
#   DRY_RUN=1 NP=8 hvd_jobs/train_stylizer.sh ...   # print the horovodrun command only
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
hvd_launch tf_usaug.train stylizer "$@"
