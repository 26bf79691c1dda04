"""The package's shape: the top level, import hygiene (no cycles, no Keras in the codec), and missing extras
reported in one line."""

from __future__ import annotations

import ast
import functools
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("vqcodec", "bitstream")


@functools.cache
def _modules() -> dict[str, Path]:
    out = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = path.relative_to(ROOT).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _top_level_imports(name: str, path: Path) -> set[str]:
    """Modules of ours that ``name`` imports when it is imported (statements at module level)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else []))
            for alias in node.names:  # a submodule, or a name of the module itself
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in _modules() else base)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def test_the_top_level_is_the_products():
    tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    top = {name.split("/")[0] for name in tracked if not name.startswith(".")}
    assert top == {"pyproject.toml", "README.md", "vqcodec", "bitstream", "benchmarks", "tests"}


def test_no_import_cycles():
    modules = _modules()
    graph = {name: {m for m in _top_level_imports(name, path) if m in modules and m != name} for name, path in modules.items()}
    state: dict[str, str] = {}

    def visit(module: str, trail: list[str]) -> None:
        if state.get(module) == "done":
            return
        assert state.get(module) != "open", f"import cycle: {' -> '.join(trail + [module])}"
        state[module] = "open"
        for other in sorted(graph[module]):
            visit(other, trail + [module])
        state[module] = "done"

    for module in sorted(graph):
        visit(module, [])


def test_the_codec_and_command_line_load_no_model_code():
    """The runtime path imports only the recipe of vqcodec.model, and never Keras, at module level."""
    light = [name for name in _modules() if name.split(".")[:2] in (["vqcodec", "codec"], ["vqcodec", "cli"], ["vqcodec", "comparison"], ["bitstream"])
             or name in ("vqcodec", "vqcodec.runtime.onnx_model")]
    for name in light:
        path = _modules()[name]
        ours = _top_level_imports(name, path)
        heavy = {m for m in ours if m.startswith("vqcodec.model.") and m != "vqcodec.model.recipe"}
        assert not heavy, (name, heavy)
        text = [line for line in path.read_text().splitlines() if not line.startswith((" ", "\t"))]
        assert not any(line.startswith(("import keras", "from keras", "import tensorflow")) for line in text), name


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_import_and_help_never_load_tensorflow():
    result = _python(
        "import io, sys, contextlib, vqcodec\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out: help(vqcodec)\n"
        "assert 'compress' in out.getvalue()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow', 'jax', 'onnx')))\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


BLOCK_KERAS = "import sys; sys.modules['keras'] = None\n"


def test_a_missing_extra_is_named_in_one_line(tmp_path):
    result = _python(BLOCK_KERAS + "import vqcodec\ntry:\n    vqcodec.VQVAEModel\nexcept ImportError as exc:\n    print(exc)\n")
    assert result.stdout.strip() == "vqcodec.VQVAEModel needs keras, part of the 'train' extra: pip install 'vqcodec[train]'"
    (tmp_path / "photos").mkdir()
    from PIL import Image

    Image.new("RGB", (16, 16)).save(tmp_path / "photos" / "a.png")
    for argv, what in [
        (["train", str(tmp_path / "photos"), "-o", str(tmp_path / "m.keras"), "--holdout", "0"], "vqcodec train needs keras"),
        (["compress", str(tmp_path / "photos" / "a.png"), "-o", str(tmp_path / "a.vqc"), "--runtime", "keras"], "needs keras"),
    ]:
        result = _python(BLOCK_KERAS + "from vqcodec.cli import main; sys.exit(main(sys.argv[1:]))", *argv)
        assert result.returncode == 1, result.stderr
        assert result.stderr.count("\n") == 1 and result.stderr.startswith("vqcodec: error: ") and "Error" not in result.stderr
        assert what in result.stderr and "pip install 'vqcodec[train]'" in result.stderr


@pytest.mark.parametrize("module", ["bitstream", "bitstream.container", "bitstream.context_model"])
def test_bitstream_imports_only_numpy_and_the_standard_library(module):
    result = _python(
        f"import sys\nbefore = set(sys.modules)\nimport {module}\n"
        "loaded = {m.split('.')[0] for m in set(sys.modules) - before}\n"
        "others = loaded - set(sys.stdlib_module_names) - {'bitstream', 'numpy'}\n"
        "print(sorted(m for m in others if not m.startswith('_')))"
    )
    assert result.stdout.strip() == "[]", result.stdout + result.stderr
