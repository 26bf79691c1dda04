"""Folder mode on a real Dask cluster (scheduler and worker processes on the loopback address), local and on S3."""

from __future__ import annotations

import filecmp
import os
import re
import signal
import subprocess
import sys

import distributed  # noqa: F401  (the 'dask' extra, part of 'test': a missing one fails here instead of skipping)
import numpy as np
import pytest
from PIL import Image

from vqcodec import cli
from vqcodec.codec import batch, cluster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _tree(root, count: int = 5, side: int = 48) -> None:
    """Images in sub-folders, a non-image and a corrupt image."""
    rng = np.random.default_rng(0)
    folders = ["", "sub", "deeper/x"]
    for i in range(count):
        folder = root / folders[i % 3]
        folder.mkdir(parents=True, exist_ok=True)
        pixels = (rng.random((side + 8 * (i % 4), side, 3)) * 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img{i}.{'jpg' if i % 4 == 3 else 'png'}")
    (root / "notes.txt").write_text("not an image")
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")


def _same_trees(a, b) -> None:
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    files_b = sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert files_a == files_b and files_a
    for rel in files_a:
        assert filecmp.cmp(a / rel, b / rel, shallow=False), rel


def _summary(err: str) -> list[str]:
    """stderr without timings."""
    return [re.sub(r"; [\d.]+ s, [\d.]+ MP/s", "", line) for line in err.splitlines()]


def test_a_local_cluster_codes_a_tree_as_folder_mode_does(tmp_path, capsys):
    src = tmp_path / "src"
    _tree(src)
    assert cli.main(["compress", str(src), "-o", str(tmp_path / "folder"), "-j", "2"]) == 1
    folder_err = capsys.readouterr().err
    assert cli.main(["compress", str(src), "-o", str(tmp_path / "cluster"), "--cluster", "local:2"]) == 1
    cluster_err = capsys.readouterr().err
    _same_trees(tmp_path / "folder", tmp_path / "cluster")
    assert _summary(cluster_err) == _summary(folder_err)
    assert "vqcodec: compressed 5 files, 1 failed, 1 skipped (not images)" in cluster_err
    assert f"vqcodec: error: {src / 'sub' / 'bad.png'}: cannot read the image" in cluster_err
    # A rerun keeps what is finished; decompressing on the cluster gives folder mode's images too.
    assert cli.main(["compress", str(src), "-o", str(tmp_path / "cluster"), "--cluster", "local:1"]) == 1
    assert "0 files, 1 failed, 5 already done" in capsys.readouterr().err
    assert cli.main(["decompress", str(tmp_path / "cluster"), "-o", str(tmp_path / "back1"),
                     "--cluster", "local:2"]) == 0
    assert cli.main(["decompress", str(tmp_path / "folder"), "-o", str(tmp_path / "back2"), "-j", "2"]) == 0
    capsys.readouterr()
    _same_trees(tmp_path / "back1", tmp_path / "back2")


def test_progress_counts_every_pixel_once(tmp_path):
    src = tmp_path / "src"
    _tree(src, count=4)
    plan = cluster.plan_tree(str(src), str(tmp_path / "out"), batch.COMPRESS)
    folder = batch.plan_folder(src, tmp_path / "x", "compress")
    assert sorted((str(t.source), t.pixels) for t in plan.tasks) == sorted((str(t.source), t.pixels)
                                                                           for t in folder.tasks)
    seen = []
    outcomes = list(batch.compress_files(plan.tasks, cluster="local:2", progress=seen.append))
    assert sorted(o.status for o in outcomes) == ["done"] * 4
    assert sum(seen) == sum(t.pixels for t in plan.tasks) > 0


def test_two_sources_with_one_output_fail_as_in_folder_mode(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    Image.new("RGB", (16, 16), (10, 200, 30)).save(src / "a.jpg")
    Image.new("RGB", (16, 16), (10, 200, 30)).save(src / "a.png")
    plan = cluster.plan_tree(str(src), str(tmp_path / "out"), batch.COMPRESS)
    folder = batch.plan_folder(src, tmp_path / "out", batch.COMPRESS)
    assert [str(t.source) for t in plan.tasks] == [str(t.source) for t in folder.tasks] == [str(src / "a.jpg")]
    failures = [(str(o.task.source), o.error) for o in plan.failed]
    assert failures == [(str(o.task.source), o.error) for o in folder.failed]
    assert "is also the output of" in plan.failed[0].error


def test_a_worker_killed_mid_run_loses_no_file(tmp_path):
    src = tmp_path / "src"
    _tree(src, count=16, side=160)
    (src / "sub" / "bad.png").unlink()
    assert cli.main(["compress", str(src), "-o", str(tmp_path / "folder"), "-j", "2", "--quiet"]) == 0
    plan = cluster.plan_tree(str(src), str(tmp_path / "cluster"), batch.COMPRESS)
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=50)
    client = distributed.Client(local, set_as_default=False)
    try:
        outcomes, after_kill = [], 0
        for outcome in batch.compress_files(plan.tasks, cluster=client):
            outcomes.append(outcome)
            if len(outcomes) == 1:
                pids = client.run(os.getpid)
                os.kill(next(iter(pids.values())), signal.SIGKILL)  # its nanny starts a new one
            else:
                after_kill += 1
    finally:
        client.close()
        local.close()
    assert after_kill >= 5  # the kill came while work remained
    assert sorted(o.status for o in outcomes) == ["done"] * 16
    _same_trees(tmp_path / "folder", tmp_path / "cluster")
    assert not [p for p in (tmp_path / "cluster").rglob("*") if p.is_file() and p.suffix != ".vqc"]  # no temporaries


def test_s3_end_to_end_on_a_local_server(tmp_path):
    """Read from and write to s3:// on a moto server at 127.0.0.1; credentials and endpoint as fsspec finds them."""
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        env = dict(os.environ, AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                   AWS_DEFAULT_REGION="us-east-1", FSSPEC_S3_ENDPOINT_URL=f"http://{host}:{port}")
        import s3fs

        s3 = s3fs.S3FileSystem(endpoint_url=env["FSSPEC_S3_ENDPOINT_URL"], key="testing", secret="testing")
        s3.mkdir("photos")
        src = tmp_path / "src"
        _tree(src)
        s3.put(str(src), "photos/in", recursive=True)

        def run(*args):
            return subprocess.run([sys.executable, "-m", "vqcodec.cli", *args], env=env, cwd=tmp_path,
                                  capture_output=True, text=True, timeout=300)

        up = run("compress", "s3://photos/in", "-o", "s3://photos/out", "--cluster", "local:2")
        assert up.returncode == 1, up.stderr
        assert "compressed 5 files, 1 failed, 1 skipped" in up.stderr
        assert "vqcodec: error: s3://photos/in/sub/bad.png: cannot read the image" in up.stderr
        assert sorted(p.split("photos/out/")[1] for p in s3.find("photos/out")) == [
            "deeper/x/img2.vqc", "img0.vqc", "img3.vqc", "sub/img1.vqc", "sub/img4.vqc"]
        down = run("decompress", "s3://photos/out", "-o", str(tmp_path / "back"), "--cluster", "local:2")
        assert down.returncode == 0, down.stderr
        assert cli.main(["compress", str(src), "-o", str(tmp_path / "folder"), "-j", "2", "--quiet"]) == 1
        assert cli.main(["decompress", str(tmp_path / "folder"), "-o", str(tmp_path / "folder_back"), "-j", "2",
                         "--quiet"]) == 0
        _same_trees(tmp_path / "back", tmp_path / "folder_back")
        for rel in ("img0.vqc", "sub/img4.vqc"):
            assert s3.cat_file(f"photos/out/{rel}") == (tmp_path / "folder" / rel).read_bytes()
    finally:
        server.stop()


def test_cluster_errors_are_one_line(tmp_path, capsys):
    src = tmp_path / "src"
    _tree(src, count=1)
    for argv, message, code in [
        (["compress", str(src), "--cluster", "local:2"], "--cluster codes one folder or URL into another", 2),
        (["compress", str(src), "-o", str(tmp_path / "o"), "--cluster", "local:0"], "local:N needs a number", 2),
        (["compress", str(src), "-o", str(tmp_path / "o"), "--cluster", "local:2", "-j", "2"], "--jobs has no effect",
         2),
        (["compress", str(src / "img0.png"), "-o", str(tmp_path / "o"), "--cluster", "local:2"], "not a folder", 1),
        (["compress", str(src), "-o", str(tmp_path / "o"), "--cluster", "local:2", "-q", "150"],
         "-q/--quality must be in 0..100", 2),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            raise SystemExit(cli.main(argv))
        err = capsys.readouterr().err
        assert exit_info.value.code == code and err.count("\n") == 1 and message in err, (argv, err)
    # Without the extra: one line naming it.
    script = ("import sys; sys.modules['distributed'] = None\n"
              "from vqcodec.cli import main; sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", script, "compress", str(src), "-o", str(tmp_path / "o"),
                             "--cluster", "local:2"], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert result.returncode == 1 and result.stderr.count("\n") == 1, result.stderr
    assert "pip install 'vqcodec[dask]'" in result.stderr


def test_workers_with_several_threads_are_refused_in_one_line(tmp_path):
    src = tmp_path / "src"
    _tree(src, count=1)
    plan = cluster.plan_tree(str(src), str(tmp_path / "out"), batch.COMPRESS)
    local = distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=True, host="127.0.0.1",
                                     dashboard_address=None, silence_logs=50)
    client = distributed.Client(local, set_as_default=False)
    try:
        with pytest.raises(ValueError, match="start them with --nthreads 1"):
            list(batch.compress_files(plan.tasks, cluster=client))
    finally:
        client.close()
        local.close()
    assert not (tmp_path / "out").exists()
