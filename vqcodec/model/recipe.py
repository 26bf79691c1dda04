"""The shipped model's recipe: the one place its architecture, quantiser and training defaults are written.

Why: the default model, ``vqcodec train`` and the codec must agree on these
numbers (the latent stride above all); a test holds the shipped model's
config to :data:`SHIPPED`. No Keras import, so the codec and the command
line read it for free.
"""

from __future__ import annotations

import dataclasses

__all__ = ["STRIDE", "Recipe", "SHIPPED", "check_ladder", "default_ladder"]

#: Pixels per latent along each axis: three stride-2 stages.
STRIDE = 8


@dataclasses.dataclass(frozen=True)
class Recipe:
    """A :class:`vqcodec.model.variable_rate.VariableRateVQVAE` and how to train it.

    The fields before ``batch_size`` build the model (the transforms' widths, and
    the keyword arguments of :meth:`model_config`); the rest are the trainer's defaults.
    """

    channels: int = 128
    embedding_dim: int = 64
    res_blocks: int = 2
    num_embeddings: int = 512
    code_dim: int = 1
    #: Rate-distortion trade-offs of the quality levels (loss ``bpp + lambda * 255^2 * MSE``), coarse to fine.
    lambdas: tuple[float, ...] = (0.0003, 0.00055, 0.001, 0.0018, 0.0035, 0.0067, 0.013, 0.025, 0.0483, 0.0932)
    rate_weight: float = 0.25
    gain_range: tuple[float, float] = (1.0, 12.0)
    learn_codebooks: bool = False
    table_width: int = 192
    learned_reconstruction: bool = True
    level_weight_power: float = 0.0
    #: The quality scale's operating points, from the smallest files up: (level index, coded scale), and
    #: optionally the (level, scale) pairs the encoder may choose instead for an image; None: every level at
    #: full size. Below about 0.3 bpp a smaller image at a finer level beats the full-size image at a coarse
    #: level; how much smaller pays depends on the image (smooth ones take the smaller), so below the default
    #: every point lets the encoder choose among two or three codings.
    ladder: tuple[tuple, ...] | None = (
        (0, 1 / 3, ((1, 1 / 4),)), (2, 1 / 3, ((3, 1 / 4),)), (4, 1 / 3, ((5, 1 / 4),)), (6, 1 / 3, ((7, 1 / 4),)),
        (6, 1 / 2, ((7, 2 / 5),)), (5, 2 / 3, ((7, 1 / 2),)),
        (4, 1.0, ((5, 3 / 4), (6, 2 / 3))), (5, 1.0, ((6, 2 / 3),)), (6, 1.0, ((7, 2 / 3),)),
        (7, 1.0), (8, 1.0), (9, 1.0),
    )
    commitment_cost: float = 0.25
    temperature: float = 1.0
    dead_code_threshold: float = 0.02
    # -- training ------------------------------------------------------------
    batch_size: int = 8
    #: Batches whose gradients are summed before a step: 8 x 4 = 32 examples a step.
    accumulate: int = 4
    patch_size: int = 128
    learning_rate: float = 3e-4
    steps: int = 100_000

    def model_config(self) -> dict:
        """The keyword arguments of :class:`VariableRateVQVAE` (besides the transforms and the ladder, which a
        model of these levels takes by default: :func:`default_ladder`)."""
        names = ("num_embeddings", "embedding_dim", "code_dim", "lambdas", "rate_weight", "gain_range",
                 "learn_codebooks", "table_width", "learned_reconstruction", "level_weight_power",
                 "commitment_cost", "temperature", "dead_code_threshold")
        return {name: getattr(self, name) for name in names} | {"stride": STRIDE}


#: The recipe of the model shipped in ``vqcodec/weights/default.keras``.
SHIPPED = Recipe()


def check_ladder(ladder, num_levels: int) -> tuple[tuple[int, float, tuple], ...]:
    """Operating points, checked and normalised: (level index, scale in (0, 1], alternatives), the alternatives
    being more (level, scale) pairs the encoder may choose instead for an image."""

    def pair(entry) -> tuple[int, float]:
        level, scale = int(entry[0]), float(entry[1])
        if not 0 <= level < num_levels or not 0 < scale <= 1:
            raise ValueError(f"a ladder point is (level in 0..{num_levels - 1}, scale in (0, 1]), got {list(entry)!r}")
        return level, scale

    points = tuple(pair(e) + (tuple(pair(a) for a in (e[2] if len(e) > 2 else ())),) for e in ladder)
    if not points:
        raise ValueError("a ladder needs at least one point")
    return points


def default_ladder(lambdas) -> tuple[tuple[int, float, tuple], ...]:
    """The operating points of a model whose config names none: the shipped ones for the shipped levels (they
    were measured for them), else every level at full size."""
    if SHIPPED.ladder is not None and tuple(float(v) for v in lambdas) == SHIPPED.lambdas:
        return check_ladder(SHIPPED.ladder, len(SHIPPED.lambdas))
    return tuple((level, 1.0, ()) for level in range(len(lambdas)))
