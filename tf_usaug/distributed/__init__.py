"""Horovod glue in one place: ranks, GPU pinning, threads, sharding, seeds, training helpers.

    context.py    generation: ``init`` -> ``Context``, ``shard``, ``item_seed``, pinning
    training.py   data-parallel training: LR scaling + warm-up, optimizer wrapping, broadcasts
    scaling.py    strong-scaling maths, CSV, table and plot (CLI: ``python -m tf_usaug.scaling``)

Without ``horovodrun`` everything degrades to one rank, with no Horovod import at all.
"""
from .context import (under_launcher, Context, default_threads, configure_threads, pin_gpu,
                      pin_cpus, init, item_seed, shard)
from .training import (HorovodTrainingConfig, is_writer, fit_verbosity, scaled_learning_rate,
                       per_rank_batch_size, shard_steps, shard_dataset, warmup_multiplier,
                       warmup_schedule, optimizer_variables, wrap_optimizer, distributed_tape,
                       broadcast_initial_state, average_metrics, fit_callbacks)
