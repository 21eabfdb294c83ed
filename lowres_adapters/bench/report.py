"""Render bench rows as a Markdown table, with the machine's figures that explain them."""

from __future__ import annotations

import os
import platform
from typing import Any, Sequence

COLUMNS = (
    ("workload", "workload"), ("setup", "setup"), ("adapter", "adapter"),
    ("trainable_parameters", "trainable"), ("batch_rows", "rows/step"), ("tokens_per_step", "tokens/step"),
    ("real_token_share", "real share"), ("tokens_per_s", "tokens/s"),
    ("ms_per_step", "ms/step"), ("peak_rss_mb", "peak RSS MB"), ("heldout_loss", "held-out loss"), ("heldout_loss_std", "± (seeds)"),
    ("speedup_vs_baseline", "speedup"), ("tokens_per_cpu_s", "tokens/CPU-s"),
    ("cpu_speedup_vs_baseline", "CPU speedup"), ("adapter_bytes_ratio", "adapter bytes / trainable bytes"),
    ("step_gflop", "GFLOP/step"), ("achieved_gflops", "GFLOP/s"), ("peak_fraction", "of matmul peak"),
)
EQUAL_WORK_COLUMNS = (
    ("workload", "workload"), ("setup", "setup"), ("tokens_per_step", "real tokens/step"),
    ("tokens_per_s_mean", "tokens/s mean"), ("tokens_per_s_std", "± std"),
    ("ms_per_real_token", "ms / real token"), ("ms_per_real_token_std", "± std"),
    ("speedup_vs_baseline", "speedup"), ("peak_fraction", "of matmul peak"), ("repeats", "repeats"),
)


def add_peak_fraction(rows: Sequence[dict[str, Any]], machine: dict[str, Any]) -> None:
    """Set each row's ``peak_fraction``: its GFLOP/s over the machine's measured 1024^3 matmul
    GFLOP/s in the precision it computed in (bf16 when the setup ran bf16 autocast, else fp32)."""
    for row in rows:
        if "achieved_gflops" in row:
            peak = machine["matmul_bf16_gflops"] if row.get("bf16") else machine["matmul_fp32_gflops"]
            row["peak_fraction"] = round(row["achieved_gflops"] / peak, 3) if peak else None


def equal_work_table(rows: Sequence[dict[str, Any]]) -> str:
    """Return the equal-work table: real tokens per step, mean ± std of the rates, cost per real token."""
    return markdown_table(rows, EQUAL_WORK_COLUMNS)


def machine_info(threads: int) -> dict[str, Any]:
    """Return the load average and this machine's matmul GFLOP/s at ``threads`` threads."""
    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    import torch

    # lazy: only the bench run that uses it pays for this import (a setup's child, a plot)
    from lowres_adapters.bench.flops import bf16_matmul_gflops, matmul_gflops

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        fp32, bf16 = matmul_gflops(), bf16_matmul_gflops()
    finally:
        torch.set_num_threads(previous)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    return {"threads": threads, "cpu_count": os.cpu_count(), "load_average": [round(x, 2) for x in load],
            "matmul_fp32_gflops": round(fp32, 1), "matmul_bf16_gflops": round(bf16, 1),
            "torch": torch.__version__, "python": platform.python_version()}


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 and value != int(value) else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[tuple[str, str]] = COLUMNS) -> str:
    """Return the rows as a Markdown table (errors get a row of their own)."""
    lines = ["| " + " | ".join(title for _, title in columns) + " |",
             "|" + "|".join("---" if key in ("workload", "setup", "adapter") else "---:" for key, _ in columns) + "|"]
    for row in rows:
        if "error" in row:
            lines.append(f"| {row['workload']} | {row['setup']} | error: {row['error']} |" + " |" * (len(columns) - 3))
            continue
        cells = []
        for key, _ in columns:
            value = row.get(key)
            if key in ("speedup_vs_baseline", "cpu_speedup_vs_baseline") and value is not None:
                cells.append(f"{value:.2f}x")
            elif key in ("real_token_share", "peak_fraction") and value is not None:
                cells.append(f"{value:.0%}")
            elif key in ("tokens_per_s_std", "tokens_per_s_mean", "ms_per_real_token", "ms_per_real_token_std"):
                cells.append("–" if value is None else f"{value:,.1f}" if "tokens" in key else f"{value:,.2f}")
            elif key in ("heldout_loss", "heldout_loss_std", "adapter_bytes_ratio") and value is not None:
                cells.append(f"{value:.3f}" if key == "adapter_bytes_ratio" else f"{value:.4f}")
            elif key in ("tokens_per_s", "tokens_per_cpu_s", "ms_per_step", "peak_rss_mb", "tokens_per_step", "achieved_gflops",
                         "step_gflop") and value is not None:
                cells.append(f"{value:,.1f}" if key in ("achieved_gflops", "step_gflop") else f"{value:,.0f}")
            else:
                cells.append(_cell(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def machine_line(info: dict[str, Any]) -> str:
    """Return one line describing the machine the rows were measured on."""
    load = ", ".join(f"{x:.2f}" for x in info["load_average"])
    return (f"{info['threads']} threads of {info['cpu_count']} CPUs, load average {load}; matmul (1024^3) "
            f"{info['matmul_fp32_gflops']:.0f} GFLOP/s fp32, {info['matmul_bf16_gflops']:.0f} GFLOP/s bf16; "
            f"torch {info['torch']}")
