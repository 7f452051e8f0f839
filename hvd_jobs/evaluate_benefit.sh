#!/usr/bin/env bash
# The benefit evaluation: per arm and fold, augment the training device's training originals,
# train the task classifier and test it in-domain and on unseen devices; the work units are
# sharded over the ranks, rank 0 writes REPORT/report.{json,md,html} (docs/benefit.md).
# Runs `python -m tf_usaug.evaluate benefit ARGS` on NP Horovod ranks (horovodrun --gloo).
#   NP=8 hvd_jobs/evaluate_benefit.sh --data bench/ --train-device A --test-devices A,B --out runs/benefit
#   NP=8 hvd_jobs/evaluate_benefit.sh ...            # the same command after a kill: resumes
#   DRY_RUN=1 NP=8 hvd_jobs/evaluate_benefit.sh ...  # print the horovodrun command only
# On several hosts the report folder must be on a file system every host sees.
# Environment: NP, HOSTS, PYTHON, HOROVODRUN, EXTRA, MODULE, DRY_RUN (see hvd_jobs/_launch.sh).
set -euo pipefail
# shellcheck source=hvd_jobs/_launch.sh
source "$(dirname "${BASH_SOURCE[0]}")/_launch.sh"
hvd_launch tf_usaug.evaluate benefit "$@"
