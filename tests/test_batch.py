"""Folders and many files: mirrored trees, skipped and failed files, resumed runs, worker processes."""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import bitstream
from vqcodec import cli
from vqcodec import codec
from vqcodec.codec import batch

REPO = Path(__file__).resolve().parents[1]


def _photo(h: int, w: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, h * w * 3).reshape(h, w, 3)
    return Image.fromarray((ramp + rng.integers(0, 40, (h, w, 3))).clip(0, 255).astype(np.uint8), "RGB")


@pytest.fixture
def tree(tmp_path):
    """in/a.png, in/sub/b.jpg, in/sub/deeper/c.png (RGBA), in/notes.txt, in/sub/broken.png (truncated)."""
    root = tmp_path / "in"
    (root / "sub" / "deeper").mkdir(parents=True)
    _photo(24, 40, 0).save(root / "a.png")
    _photo(32, 24, 1).save(root / "sub" / "b.jpg", quality=95)
    rgba = _photo(16, 16, 2)
    rgba.putalpha(128)
    rgba.save(root / "sub" / "deeper" / "c.png")
    (root / "notes.txt").write_text("not an image")
    data = (root / "a.png").read_bytes()
    (root / "sub" / "broken.png").write_bytes(data[: len(data) // 2])
    return root


def _main(*args) -> int:
    return cli.main([str(a) for a in args])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_folder_round_trip_mirrors_the_tree(tree, tmp_path, tiny_model_path, capsys):
    out, back = tmp_path / "out", tmp_path / "back"
    assert _main("compress", tree, "-o", out, "--model", tiny_model_path, "-q", "2", "--print-psnr") == 1  # broken.png
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("vqcodec: compressed 3 files, 1 failed, 1 skipped (not images); ")
    assert "bpp, mean PSNR " in err[0]
    assert len(err) == 2 and err[1].startswith(f"vqcodec: error: {tree / 'sub' / 'broken.png'}: cannot read the image: ")
    assert _files(out) == ["a.vqc", "sub/b.vqc", "sub/deeper/c.vqc"]
    assert bitstream.read_header((out / "sub" / "deeper" / "c.vqc").read_bytes()).mode == "RGBA"
    # Each file holds exactly what compressing it alone gives.
    model = codec.load_model(tiny_model_path)
    assert (out / "a.vqc").read_bytes() == codec.compress(tree / "a.png", quality=2, model=model)

    assert _main("decompress", out, "-o", back, "--model", tiny_model_path) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("vqcodec: decompressed 3 files, 0 failed; ")
    assert _files(back) == ["a.png", "sub/b.png", "sub/deeper/c.png"]
    with Image.open(back / "sub" / "deeper" / "c.png") as img:
        assert img.mode == "RGBA" and img.size == (16, 16)


def test_folder_input_needs_an_output_folder(tree, tiny_model_path, capsys):
    assert _main("compress", tree, "--model", tiny_model_path) == 2  # usage errors
    assert "give the output folder with -o OUTDIR" in capsys.readouterr().err
    assert _main("compress", tree, tree / "a.png", "-o", tree / "x", "--model", tiny_model_path) == 2
    assert "a folder must be the only input" in capsys.readouterr().err
    assert _main("compress", tree, "-o", tree / "a.png", "--model", tiny_model_path) == 1
    assert "is not a folder" in capsys.readouterr().err
    assert _main("compress", tree, "-o", tree / "x", "--jobs", "0", "--model", tiny_model_path) == 2  # a usage error
    assert "--jobs must be at least 1" in capsys.readouterr().err


def test_output_folder_inside_the_input_is_not_walked(tree, tiny_model_path, capsys):
    assert _main("compress", tree, "-o", tree / "coded", "--model", tiny_model_path) == 1
    assert _main("compress", tree, "-o", tree / "coded", "--model", tiny_model_path) == 1
    summary = capsys.readouterr().err.strip().splitlines()[-2]
    assert summary.startswith("vqcodec: compressed 0 files, 1 failed, 3 already done")
    assert _files(tree / "coded") == ["a.vqc", "sub/b.vqc", "sub/deeper/c.vqc"]


def test_existing_outputs_are_kept_when_complete_and_redone_when_not(tree, tmp_path, tiny_model_path, capsys):
    (tree / "sub" / "broken.png").unlink()
    out = tmp_path / "out"
    assert _main("compress", tree, "-o", out, "--model", tiny_model_path) == 0
    kept = (out / "a.vqc").stat().st_mtime_ns
    good = (out / "sub" / "b.vqc").read_bytes()
    (out / "sub" / "b.vqc").write_bytes(good[:-3])  # damaged: not a finished output
    capsys.readouterr()
    assert _main("compress", tree, "-o", out, "--model", tiny_model_path) == 0
    assert "compressed 1 file, 0 failed, 2 already done" in capsys.readouterr().err
    assert (out / "a.vqc").stat().st_mtime_ns == kept
    assert (out / "sub" / "b.vqc").read_bytes() == good
    assert _main("compress", tree, "-o", out, "--model", tiny_model_path, "--force") == 0
    assert "compressed 3 files, 0 failed, 1 skipped" in capsys.readouterr().err


def test_a_killed_run_resumes(tree, tmp_path, tiny_model_path, capsys):
    """A run killed (SIGKILL) after two files: a rerun keeps those two and does the rest."""
    (tree / "sub" / "broken.png").unlink()
    out = tmp_path / "out"
    script = textwrap.dedent(
        f"""
        import os, signal
        from vqcodec.codec import batch
        plan = batch.plan_folder({str(tree)!r}, {str(out)!r}, "compress")
        for n, outcome in enumerate(batch.compress_files(plan.tasks, model={tiny_model_path!r}, jobs=1), 1):
            assert outcome.status == "done", outcome
            if n == 2:
                # what a kill in the middle of the next write leaves behind
                (plan.tasks[2].target.parent).mkdir(parents=True, exist_ok=True)
                (plan.tasks[2].target.parent / ("." + plan.tasks[2].target.name + ".abcd1234.tmp")).write_bytes(b"partial")
                # and beside a finished output, what a killed --force run leaves
                (plan.tasks[0].target.parent / ("." + plan.tasks[0].target.name + ".ffff0000.tmp")).write_bytes(b"partial")
                os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    run = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, timeout=300)
    assert run.returncode == -9, run.stderr.decode()
    first = {p: (out / p).stat().st_mtime_ns for p in _files(out) if p.endswith(".vqc")}
    assert len(first) == 2

    assert _main("compress", tree, "-o", out, "--model", tiny_model_path) == 0
    assert "compressed 1 file, 0 failed, 2 already done" in capsys.readouterr().err
    assert _files(out) == ["a.vqc", "sub/b.vqc", "sub/deeper/c.vqc"]  # the stale temporaries are gone
    assert {p: (out / p).stat().st_mtime_ns for p in first} == first


def test_worker_processes_give_the_same_files(tree, tmp_path, tiny_model_path):
    (tree / "sub" / "broken.png").unlink()
    plan = batch.plan_folder(tree, tmp_path / "out", "compress")
    outcomes = list(batch.compress_files(plan.tasks, model=tiny_model_path, jobs=2, quality=3))
    assert [o.status for o in outcomes] == ["done"] * 3
    model = codec.load_model(tiny_model_path)
    for task in plan.tasks:
        assert task.target.read_bytes() == codec.compress(task.source, quality=3, model=model)



def test_a_worker_that_dies_costs_no_file(tmp_path, tiny_model_path):
    """Killing a worker breaks its pool; the files it had not finished are redone, none fails."""
    tasks = []
    for i in range(4):
        _photo(96, 96, i).save(tmp_path / f"{i}.png")
        tasks.append(batch.Task(tmp_path / f"{i}.png", tmp_path / f"{i}.vqc", 96 * 96))
    run = batch.compress_files(tasks, model=tiny_model_path, jobs=2, quality=3)
    outcomes = [next(run)]
    workers = multiprocessing.active_children()
    assert workers
    os.kill(workers[0].pid, signal.SIGKILL)
    outcomes += list(run)
    assert sorted(str(o.task.source) for o in outcomes) == sorted(str(t.source) for t in tasks)
    assert [o.status for o in outcomes] == ["done"] * 4, [o.error for o in outcomes]
    model = codec.load_model(tiny_model_path)
    for task in tasks:
        assert task.target.read_bytes() == codec.compress(task.source, quality=3, model=model)

def test_progress_counts_every_pixel_tile_by_tile(tmp_path, tiny_model_path):
    """A wide image is coded in several tiles; progress reaches its pixel count exactly."""
    _photo(16, 1200, 3).save(tmp_path / "wide.png")  # 150 latents wide: tiled
    task = batch.Task(tmp_path / "wide.png", tmp_path / "wide.vqc", 16 * 1200)
    steps = []
    [outcome] = batch.compress_files([task], model=codec.load_model(tiny_model_path), progress=steps.append)
    assert outcome.status == "done"
    assert len([s for s in steps if s > 0]) >= 3
    assert sum(steps) == pytest.approx(16 * 1200)


def test_one_bad_file_does_not_stop_the_others(tmp_path, tiny_model_path, capsys):
    _photo(16, 16, 0).save(tmp_path / "good.png")
    (tmp_path / "bad.png").write_text("nope")
    assert _main("compress", tmp_path / "bad.png", tmp_path / "good.png", "--model", tiny_model_path) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith(f"vqcodec: error: {tmp_path / 'bad.png'}: ")
    assert err[1].startswith(f"{tmp_path / 'good.png'} -> ")
    assert (tmp_path / "good.vqc").is_file() and not (tmp_path / "bad.vqc").exists()


def test_default_jobs():
    big = 64e9
    assert batch.default_jobs(10, cpus=2, memory=big) == 2
    assert batch.default_jobs(10, cpus=16, memory=big) == 10
    assert batch.default_jobs(3, cpus=16, memory=big) == 3
    assert batch.default_jobs(0, cpus=16, memory=big) == 1
    assert batch.default_jobs(10, cpus=16, memory=4e9) == 2  # memory caps the workers
    assert batch.default_jobs(10, cpus=16, memory=1e9) == 1
