"""RD curves as data: load/save in CompressAI's JSON layout, plot, Markdown table."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from .common import ms_ssim_db

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


@dataclass
class Curve:
    name: str
    bpp: list[float]
    psnr: list[float]
    msssim: list[float] | None = None
    kind: str = "measured"  # "ours", "measured" or "reference"
    settings: list | None = None
    description: str = ""
    extra: dict = field(default_factory=dict)

    def msssim_db(self) -> list[float] | None:
        return None if not self.msssim else [ms_ssim_db(v) for v in self.msssim]

    def to_json(self) -> dict:
        results = {"bpp": self.bpp, "psnr-rgb": self.psnr}
        if self.msssim is not None:
            results["ms-ssim"] = self.msssim
        if self.settings is not None:
            results["quality"] = self.settings
        return {"name": self.name, "description": self.description, "results": results, **self.extra}


def load_curve(path: str | os.PathLike, kind: str = "reference") -> Curve:
    """Read a CompressAI-style results JSON ("psnr-rgb" or the older "psnr" key)."""
    with open(path) as f:
        data = json.load(f)
    res = data["results"]
    psnr = res.get("psnr-rgb", res.get("psnr"))
    if psnr is None or "bpp" not in res:
        raise ValueError(f"{path}: results need 'bpp' and 'psnr-rgb' (or 'psnr')")
    return Curve(name=data.get("name", Path(path).stem), bpp=list(res["bpp"]), psnr=list(psnr),
                 msssim=list(res["ms-ssim"]) if res.get("ms-ssim") else None, kind=kind,
                 settings=res.get("quality"), description=data.get("description", ""))


def load_references(directory: str | os.PathLike = REFERENCE_DIR) -> list[Curve]:
    directory = Path(directory)
    if not directory.is_dir():
        return []
    return [load_curve(p) for p in sorted(directory.glob("*.json"))]


def plot_rd(curves: list[Curve], path: str | os.PathLike, title: str = "") -> None:
    """Two panels: PSNR vs bpp, MS-SSIM (dB) vs bpp.  Measured solid, published dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_p, ax_m) = plt.subplots(1, 2, figsize=(13, 5.2))
    max_bpp = max((max(c.bpp) for c in curves if c.kind != "reference" and c.bpp), default=2.0)
    for c in curves:
        style = dict(linestyle="--", marker=".", linewidth=1.2, alpha=0.8) if c.kind == "reference" else \
            dict(linestyle="-", marker="o", markersize=3.5, linewidth=2.4 if c.kind == "ours" else 1.6)
        if c.kind == "ours":
            style.update(color="black", zorder=10)
        label = c.name + (" (published)" if c.kind == "reference" else "")
        line = ax_p.plot(c.bpp, c.psnr, label=label, **style)[0]
        if c.msssim:
            ax_m.plot(c.bpp, c.msssim_db(), label=label, color=line.get_color(),
                      **{k: v for k, v in style.items() if k != "color"})
    ax_p.set(xlabel="bits per pixel", ylabel="PSNR-RGB (dB)", title="PSNR")
    ax_m.set(xlabel="bits per pixel", ylabel="MS-SSIM (dB) = -10 log10(1 - MS-SSIM)", title="MS-SSIM")
    for ax in (ax_p, ax_m):
        ax.set_xlim(0, min(max_bpp * 1.05, 4.0))
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7.5, loc="lower right")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fmt(x, digits=2, pct=False) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:+.{digits}f}%" if pct else f"{x:.{digits}f}"


def markdown(curves: list[Curve], bd_rows: list[dict], header: list[str]) -> str:
    """Markdown report: header lines, BD-rate table, then one RD table per codec."""
    lines = ["# Rate-distortion benchmark", ""]
    lines += [f"- {h}" for h in header] + [""]
    if bd_rows:
        anchors = list(bd_rows[0]["vs"].keys())
        lines += ["## BD-rate (negative = fewer bits for the same quality)", "",
                  "Akima interpolation of log-rate over the overlapping quality interval; "
                  "'PSNR' and 'MS-SSIM' say which quality axis (MS-SSIM in dB). "
                  "Rows marked 'published' are Kodak numbers from papers: comparable only when --data is Kodak.", ""]
        cols = [f"vs {a} ({m})" for a in anchors for m in ("PSNR", "MS-SSIM")]
        lines += ["| codec | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for row in bd_rows:
            cells = [_fmt(row["vs"][a][m], 1, pct=True) for a in anchors for m in ("psnr", "ms-ssim")]
            lines.append(f"| {row['name']} | " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## RD points (averages over images)", ""]
    for c in curves:
        if c.kind == "reference":
            continue
        param = c.extra.get("param", "setting")
        lines += [f"### {c.name}", "", c.description, "",
                  f"| {param} | bpp | PSNR-RGB (dB) | MS-SSIM | MS-SSIM (dB) |", "|---|---|---|---|---|"]
        mdb = c.msssim_db() or [None] * len(c.bpp)
        ms = c.msssim or [None] * len(c.bpp)
        settings = c.settings or [""] * len(c.bpp)
        for s, b, p, m, md in zip(settings, c.bpp, c.psnr, ms, mdb):
            lines.append(f"| {s} | {_fmt(b, 3)} | {_fmt(p)} | {_fmt(m, 4)} | {_fmt(md)} |")
        lines.append("")
    refs = [c for c in curves if c.kind == "reference"]
    if refs:
        lines += ["## Published reference curves (dashed in the plot)", ""]
        lines += [f"- **{c.name}**: {c.description}" for c in refs] + [""]
    return "\n".join(lines)
