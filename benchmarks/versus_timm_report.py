"""versus_timm.py's results: one entry per measure (times, ratios, GEMM shares, memory), and the table a
person reads at a glance, as rich renderables or markdown. Pure functions of the report dict, so they can
be checked on fabricated timings."""
from __future__ import annotations

from common import BUSY_SPREAD, busiest, busy_note, ratios, spread
from probes import LEVERS_LEGEND, lever_words
from rich.table import Table
from rich.text import Text

SIDES = ("vitdsl", "timm")
MEMORY = "train mem"  # the column of the eager training step's peak memory


def measure_entry(label: str, times: dict[str, list[float]], flops: float, gemm: float,
                  peaks: dict[str, list[int]] | None = None) -> dict:
    """One measure of one model: per side the seconds per call (median, min, max, every round), the
    per-round ratio vitdsl/timm, each side's share of the GEMM rate (``flops`` per call), and, given
    ``peaks``, the peak memory in bytes likewise."""
    entry = {"label": label, "flops": flops, "ratio": ratios(times["vitdsl"], times["timm"])}
    for side in SIDES:
        entry[side] = {**spread(times[side]), "rounds": times[side]}
    entry["gemm_share"] = {side: flops / entry[side]["median"] / gemm for side in SIDES}
    if peaks:
        entry["peak_rss_bytes"] = {**{side: {**spread(peaks[side]), "rounds": peaks[side]} for side in SIDES},
                                   "ratio": ratios(peaks["vitdsl"], peaks["timm"])}
    return entry


def _columns(report: dict) -> list[str]:
    """The measure labels in the order measured, with the memory column after the eager training step."""
    labels = [m["label"] for m in report["models"][0]["measures"]] if report["models"] else []
    out = []
    for label in labels:
        out.append(label)
        if label.startswith("train") and any("peak_rss_bytes" in m for m in report["models"][0]["measures"]):
            out.append(MEMORY)
    return out


def _cell(model: dict, column: str) -> dict | None:
    """The ratio dict behind a column (median, min, max), or None where that model lacks it."""
    for m in model["measures"]:
        if column == MEMORY and m["label"].startswith("train") and "peak_rss_bytes" in m:
            return m["peak_rss_bytes"]["ratio"]
        if m["label"] == column:
            return m["ratio"]
    return None


def _share(model: dict, prefix: str) -> str:
    """vitdsl's and timm's share of the GEMM rate in the last eager measure whose label starts ``prefix``."""
    found = [m for m in model["measures"] if m["label"].startswith(prefix)]
    if not found:
        return "-"
    share = found[-1]["gemm_share"]
    return f"{share['vitdsl']:.0%} / {share['timm']:.0%}"


def _share_headers(report: dict) -> list[tuple[str, str]]:
    labels = [m["label"] for m in report["models"][0]["measures"]] if report["models"] else []
    evals = [x for x in labels if x.startswith("eval")]
    trains = [x for x in labels if x.startswith("train")]
    return [(f"GEMM share {x}", x) for x in (evals[-1:] + trains[-1:])]


def rows(report: dict) -> tuple[list[str], list[list]]:
    """The glance table: headers, and per model its name, GFLOPs/image, levers, then per measure the ratio
    dict (or None), then the GEMM shares as text."""
    columns, shares = _columns(report), _share_headers(report)
    headers = ["model", "GFLOPs", "levers", *columns, *(h for h, _ in shares)]
    body = [[m["name"], f"{m['flops_per_image'] / 1e9:.2f}", lever_words(m["levers"]),
             *(_cell(m, c) for c in columns), *(_share(m, p) for _, p in shares)] for m in report["models"]]
    return headers, body


def _ratio_text(r: dict | None) -> Text:
    if r is None:
        return Text("-")
    style = "green" if r["median"] < 0.95 else "red" if r["median"] > 1.05 else ""
    return Text.assemble((f"{r['median']:.2f}", f"bold {style}".strip()), "\n",
                         (f"{r['min']:.2f}-{r['max']:.2f}", "dim"))


def notes(report: dict) -> list[str]:
    meta = report["meta"]
    out = [f"ratio = vitdsl / timm per round, median (range below) over {meta['rounds']} rounds: "
           "< 1.0 means vitdsl is faster (or, for train mem, uses less)"
           + (f"; {meta['processes']}" if "processes" in meta else "")
           + ("" if "heap_kept" not in meta else "; both processes keep their heaps" if meta["heap_kept"]["timm"]
              else "; vitdsl's process keeps its heap, timm's trims it (glibc's default; --timm-keeps-heap)"),
           f"GEMM share = the model's FLOPs per second over the CPU's fp32 GEMM rate, "
           f"{meta['gemm']['flops_per_s'] / 1e9:.1f} GFLOP/s ({meta['gemm']['n']}x{meta['gemm']['n']} matmul; "
           f"{meta['gemm']['flops_per_s_after'] / 1e9:.1f} after the models); training counted as 3x the forward",
           f"train mem = {meta['memory']}", LEVERS_LEGEND]
    compiles = [f"{m['name']} {e['label'].split()[1]} {e['compile_s']['vitdsl']:.0f} / {e['compile_s']['timm']:.0f}"
                for m in report["models"] for e in m["measures"] if "compile_s" in e]
    if compiles:
        out.append("torch.compile time, s (vitdsl / timm; the first call): " + ", ".join(compiles))
    breaks = [f"{m['name']} ({side}: {n})" for m in report["models"] for e in m["measures"]
              for side, n in e.get("graph_breaks", {}).items() if n]
    if breaks:
        out.append("torch.compile graph breaks: " + ", ".join(sorted(set(breaks))))
    factor = max((busiest({s: e[s]["rounds"] for s in SIDES}) for m in report["models"] for e in m["measures"]),
                 default=1.0)
    if factor > BUSY_SPREAD:
        out.append(busy_note(factor))
    return out


def render(report: dict) -> list:
    """The glance table, a table of the absolute times, and the notes, as rich renderables."""
    meta = report["meta"]
    headers, body = rows(report)
    n_ratio = len(headers) - 3 - len(_share_headers(report))
    table = Table(title=f"vitdsl / timm on CPU ({meta['threads']} thread(s), torch {meta['torch']}, timm "
                        f"{meta['timm']}): ratio < 1.0 means vitdsl is faster", title_justify="left")
    for h in headers:
        table.add_column(h, justify="left" if h in ("model", "levers") else "right")
    for row in body:
        table.add_row(*row[:3], *(_ratio_text(r) for r in row[3:3 + n_ratio]), *row[3 + n_ratio:])
    times = Table(title="median per call (vitdsl / timm): ms, and MiB for train mem", title_justify="left")
    columns = _columns(report)
    for h in ("model", *columns):
        times.add_column(h, justify="left" if h == "model" else "right")
    for m in report["models"]:
        cells = []
        for c in columns:
            cells.append(_absolute(m, c))
        times.add_row(m["name"], *cells)
    return [table, times, *(Text(n, style="dim") for n in notes(report))]


def _absolute(model: dict, column: str) -> str:
    for m in model["measures"]:
        if column == MEMORY and m["label"].startswith("train") and "peak_rss_bytes" in m:
            mem = m["peak_rss_bytes"]
            return f"{mem['vitdsl']['median'] / 2**20:.0f} / {mem['timm']['median'] / 2**20:.0f}"
        if m["label"] == column:
            return f"{m['vitdsl']['median'] * 1e3:.1f} / {m['timm']['median'] * 1e3:.1f}"
    return "-"


def to_markdown(report: dict) -> str:
    """The glance table as a markdown table (ratios with their range), then the notes as a list."""
    headers, body = rows(report)
    n_ratio = len(headers) - 3 - len(_share_headers(report))
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join(["---"] * 3 + ["--:"] * (len(headers) - 3)) + "|"]
    for row in body:
        ratio_cells = [f"{r['median']:.2f} ({r['min']:.2f}–{r['max']:.2f})" if r else "-"
                       for r in row[3:3 + n_ratio]]
        lines.append("| " + " | ".join([f"`{row[0]}`", *row[1:3], *ratio_cells, *row[3 + n_ratio:]]) + " |")
    return "\n".join(lines + [""] + [f"- {n}" for n in notes(report)])
