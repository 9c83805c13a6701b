"""How every ltbench figure looks and is written: the seaborn theme on the Agg backend (no display on cluster
nodes), distinguishable colours for up to 20 methods, the caption under a figure, a legend beside the plot, and
the PNG + PDF pair with short file names."""

from __future__ import annotations

import re
from pathlib import Path


def setup():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    sns.set_theme(style="whitegrid", context="paper")
    return plt, sns


def palette(n: int) -> list:
    """n distinguishable colours: seaborn's qualitative palette up to 10, tab20 up to 20, husl beyond."""
    import seaborn as sns

    return sns.color_palette("deep" if n <= 10 else "tab20" if n <= 20 else "husl", n)


def caption(fig, text: str) -> None:
    """What lines, bands and bars show, under the figure (a reader of the PDF has no README at hand)."""
    fig.text(0.01, -0.02, text, ha="left", va="top", fontsize=7, color="0.3")


def legend_outside(g, n: int) -> None:
    """Move a FacetGrid's legend to the right in as many columns as keep it no taller than the figure."""
    if g.legend is None:
        return
    rows_fit = max(8, int(g.figure.get_figheight() * 72 / 13))  # ~13 pt per legend row at the paper context
    g.legend.set_bbox_to_anchor((1.0, 0.5))
    g.legend._loc = 6  # center left
    if n > rows_fit:
        handles, labels = g.legend.legend_handles, [t.get_text() for t in g.legend.get_texts()]
        title = g.legend.get_title().get_text()
        g.legend.remove()
        g._legend = g.figure.legend(handles, labels, title=title, loc="center left", bbox_to_anchor=(1.0, 0.5),
                                    ncol=-(-n // rows_fit), frameon=False, fontsize=7)  # fmt: skip


def save_figure(fig, out_dir: Path, stem: str) -> list[Path]:
    """Write ``stem.png`` (150 dpi) and ``stem.pdf`` (vector, for the paper) and close the figure. Stems longer
    than 60 characters (rows named with many hparams) are cut and end in a short hash of the full name."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.+-]+", "_", stem).strip("_")
    if len(stem) > 60:
        import hashlib

        stem = f"{stem[:50]}_{hashlib.sha256(stem.encode()).hexdigest()[:8]}"
    paths = [out_dir / f"{stem}.png", out_dir / f"{stem}.pdf"]
    fig.savefig(paths[0], dpi=150, bbox_inches="tight")
    fig.savefig(paths[1], bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths
