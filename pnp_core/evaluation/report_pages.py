"""Self-contained HTML pages for the Snakemake report, which shows an HTML result inline
(a CSV or a WAV file only as a download):

* :func:`write_table_page`: a results table (``results/table1.csv``,
  ``results/tables/ablation_*.csv``) with each ``<x>_mean``/``<x>_std`` pair shown as
  "mean ± std";
* :func:`write_listening_page`: per synthesizer, the picked test sounds, the target and
  every method's match as playable ``<audio>`` elements (the WAV files embedded), with θ
  and θ̂ in physical units.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from pnp_core.errors import DataError
from pnp_core.evaluation.figures.style import METHOD_ORDER, parse_run, run_label
from pnp_core.io import atomic_path
from pnp_core.evaluation.listen import sound_name
from pnp_core.evaluation.tables import format_value, mean_std_cell

STYLE = """<style>
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1em; color: #222; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; vertical-align: top;
         white-space: nowrap; }
th { background: #f2f2f2; }
td.text, th.text { text-align: left; }
audio { width: 180px; }
.params { font-size: 12px; color: #555; text-align: left; white-space: nowrap; }
</style>"""


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>{html.escape(title)}"
            f"</title>{STYLE}</head><body><h2>{html.escape(title)}</h2>\n{body}\n</body></html>\n")


def _write(path, text: str) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")


def mean_std_columns(df: pd.DataFrame) -> pd.DataFrame:
    """``<x>_mean`` and ``<x>_std`` pairs merged into one ``<x>`` column "mean ± std"
    (std NaN, e.g. one run: the mean alone); other columns formatted as they are."""
    out = pd.DataFrame(index=df.index)
    for col in df.columns:
        if col.endswith("_std") and f"{col[:-4]}_mean" in df.columns:
            continue
        if col.endswith("_mean") and f"{col[:-5]}_std" in df.columns:
            base = col[:-5]
            out[f"{base} (mean ± std)"] = [
                mean_std_cell(m, s, std_format=".2g", missing="–")
                for m, s in zip(df[col].astype(float), df[f"{base}_std"].astype(float))]
        else:
            out[col] = [format_value(v, missing="–") for v in df[col]]
    return out


def table_html(df: pd.DataFrame) -> str:
    shown = mean_std_columns(df)
    text = {c for c in df.columns if not pd.api.types.is_numeric_dtype(df[c])}
    head = "".join(f"<th class='{'text' if c in text else ''}'>{html.escape(c)}</th>"
                   for c in shown.columns)
    rows = []
    for _, r in shown.iterrows():
        cells = "".join(f"<td class='{'text' if c in text else ''}'>{html.escape(str(v))}</td>"
                        for c, v in r.items())
        rows.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{head}</tr>\n" + "\n".join(rows) + "</table>"


def write_table_page(csv_path, out, title: str | None = None) -> pd.DataFrame:
    """An HTML rendering of a CSV table (see :func:`mean_std_columns`)."""
    df = pd.read_csv(csv_path)
    note = (f"<p>From <code>{html.escape(str(csv_path))}</code>: {len(df)} rows. "
            "Mean ± standard deviation over runs (seeds); '–' where undefined.</p>")
    _write(out, _page(title or Path(csv_path).stem, note + table_html(df)))
    return df


def _audio(path: Path) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f"<audio controls preload='none' src='data:audio/wav;base64,{data}'></audio>"
            f"<br><small>{html.escape(path.name)}</small>")


def _params(row: pd.Series, hat: bool) -> str:
    """θ (or θ̂) of a sounds.csv row, one "name = value [unit]" per line."""
    cols = [c for c in row.index if ("_hat [" in c) == hat and "[" in c]
    lines = [f"{c.split(' [')[0].removesuffix('_hat')} = {row[c]:.4g} [{c.split(' [')[1]}"
             for c in cols]
    return ("θ̂: " if hat else "θ: ") + "<br>".join(html.escape(s) for s in lines)


def write_listening_page(synth: str, run_dirs, out) -> None:
    """One table per synth: a row per picked test sound, the target then each run's match.

    ``run_dirs``: the folders ``results/listen/{synth}/{run}`` written by
    :func:`pnp_core.evaluation.listen.write_listening` (same sounds in each).
    """
    run_dirs = [Path(d) for d in run_dirs]
    sounds = {d: pd.read_csv(d / "sounds.csv") for d in run_dirs}
    first = sounds[run_dirs[0]]
    for d, s in sounds.items():
        if s["id"].tolist() != first["id"].tolist():
            raise DataError(f"{d}/sounds.csv: test ids {s['id'].tolist()} differ from "
                            f"{run_dirs[0]}/sounds.csv ({first['id'].tolist()}); rerun the "
                            "listen rules")
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    order = sorted(run_dirs, key=lambda d: (rank.get(parse_run(d.name)[0], len(rank)), d.name))
    head = "<th class='text'>test sound</th><th>target g(θ)</th>" + "".join(
        f"<th>{html.escape(run_label(d.name))}<br><small>{html.escape(d.name)}</small></th>"
        for d in order)
    rows = []
    for i, t in first.iterrows():
        k = int(t["k"])
        cells = [f"<td class='text'>id {int(t['id'])}<div class='params'>{_params(t, False)}"
                 "</div></td>",
                 f"<td>{_audio(run_dirs[0] / sound_name(k, 'target'))}</td>"]
        for d in order:
            r = sounds[d].iloc[i]
            cells.append(f"<td>{_audio(d / sound_name(k, 'match'))}<div class='params'>"
                         f"{_params(r, True)}</div></td>")
        rows.append("<tr>" + "".join(cells) + "</tr>")
    note = ("<p>Each match is g(θ̂) with θ̂ the method's prediction for the target's test "
            "sound. Target and match of a pair share one gain (the louder peaks at 0.9), so "
            "their loudness difference is real.</p>")
    _write(out, _page(f"{synth}: target and matched sounds",
                      note + f"<table><tr>{head}</tr>\n" + "\n".join(rows) + "</table>"))


__all__ = ["write_table_page", "write_listening_page", "table_html", "mean_std_columns"]
