"""What the GAN trainers share (``wgan``: paper 003's improved alpha-WGAN-GP; ``stylegan2``:
paper 004's StyleGAN2 + ADA / DiffAugment). A family keeps its networks, losses, config and
training loop in its own package (``tf_usaug.models.wgan``, ``tf_usaug.models.stylegan2``) and
builds on these modules; docs/gan.md describes the run folder and the choices.

    data.py        load_gan_data(source, size, ...) -> GanData: grey squares in [-1, 1] with
                   class indices; batch_indices(rng, n, batch); check_size, check_fit, to_unit
    checkpoint.py  TrainingState (step, kimg, extras such as ADA p, history, numpy RNG);
                   GanCheckpoint(run_dir, networks, optimizers, tf_rng): save / restore the
                   whole state atomically; read_state(run_dir)
    grids.py       fixed_latents(seed, n, z_dim), grid_labels(n, n_classes), image_grid,
                   seed_latents(seeds, z_dim) (row i from seeds[i] alone),
                   save_grid(run_dir, step, images) -> RUN/grids/step-XXXXXXXX.png
    run_files.py   take_gan_run_dir (RunDir rules + resume), GanInfo (RUN/gan.json),
                   write_results (generator.keras + gan.json + curves + metrics.json, last),
                   tensorboard_writer / write_scalars, plot_curves, remove_results
    arguments.py   add_common_arguments(parser, length="steps"|"kimg"), common_values(args)
    per_class.py   train_per_class(cfg, train_one, job, settings): one model per class in
                   RUN/<class>/, index RUN/gan.json
    registry.py    register_generator_loader(model_type, loader); check_gan_run(RUN) (no
                   TensorFlow); load_gan_run(RUN) -> GanRun; generate(run, n, seed, label=None)

The stable API (what ``augment --method gan`` and the StyleGAN2 trainer call):

* ``load_gan_data(source, size, *, fit="stretch", classes=None, conditional=False)`` reads
  ``discover(source)`` (BUSI ``ROOT/<class>/<image>``, ``*_mask*.png`` never listed; flat
  folder; CSV) into ``GanData(images [N, S, S] float32 in [-1, 1], labels [N] int32,
  classes tuple, samples, source)``. ``classes`` keeps only those labels (``--per-class``
  trains one of them at a time); with ``conditional`` every image needs a label, and
  ``labels[i]`` indexes ``classes`` (sorted names). ``GanData.fingerprint()`` hashes pixels
  and labels (for run.json).
* ``TrainingState`` is JSON: ``step``, ``kimg`` (thousands of real images shown), ``extras``
  (any scalars: ``{"ada_p": 0.31}``), ``history`` rows + ``pending`` sums (``accumulate`` /
  ``close_row``), ``numpy_rng`` (a ``np.random.Generator``'s bit-generator state, set by
  ``capture_rng`` / read by ``make_rng``), ``seconds``, ``ranks``, ``latest``.
  ``GanCheckpoint(run_dir, {"generator": G, ...}, {"generator": opt_G, ...}, tf_rng)`` writes
  ``RUN/checkpoints/step-XXXXXXXX.*`` (every network's weights, every optimiser's iteration
  count and moments, the ``tf.random.Generator`` state), then ``state.json`` atomically, then
  drops older checkpoints: a kill -9 at any moment leaves a complete, named pair.
  ``restore(state)`` loads them back (build the optimisers first: ``optimizer.build(vars)``).
* ``take_gan_run_dir(rundir, cfg, job, settings, held, total, unit, result_files)`` (rank 0,
  before TensorFlow starts): lock, compare settings with run.json, and return ``(state,
  stored_metrics, note)`` exactly like ``models.run_common.take_run_dir``; ``cfg`` needs
  ``out``, ``resume``, ``overwrite``; ``total`` is the length in ``unit`` ("steps" or "kimg").
* ``GanInfo`` (``RUN/gan.json``): ``model`` (the registry key: "wgan", "stylegan2"),
  ``size``, ``z_dim``, ``conditional``, ``classes``, ``generator`` (file name), ``steps``,
  ``kimg``, ``extra`` (family-specific, e.g. mapping layers); per-class runs:
  ``per_class=True`` and ``runs = {class: sub-folder}``.
* ``register_generator_loader("stylegan2", loader)`` where ``loader(run_dir: Path, info:
  dict) -> sample`` and ``sample(seeds: Sequence[int], labels: Sequence[int] | None) ->
  np.ndarray [n, S, S] float32 in [0, 1]``; image ``i`` must depend on ``seeds[i]`` (and its
  label) alone. ``load_gan_run`` imports ``tf_usaug.models.<model>`` when the type is not
  registered yet, so a family registers at its package's import (without importing
  TensorFlow there).
* ``generate(run, n, seed, label=None, batch_size=32)``: ``seed`` an int (image ``i`` gets
  ``item_seed(seed, "gan/<i>")``) or one seed per image; ``label`` None, a class name or index,
  or one per image; per-class runs need a label, unconditional single runs refuse one.

Importing this package does not import TensorFlow.
"""
from .data import GanData, load_gan_data
from .registry import GanRun, check_gan_run, generate, load_gan_run, register_generator_loader

__all__ = ["GanData", "load_gan_data", "GanRun", "check_gan_run", "generate", "load_gan_run",
           "register_generator_loader"]
