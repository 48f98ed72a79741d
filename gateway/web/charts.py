"""The job page's load chart, drawn as SVG on the server (no chart library in the
browser): CPU (percent of one CPU), resident memory and, where measured, GPU use over
the job's samples (gateway/jobs/usage.py)."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from gateway.jobs.usage import Sample

WIDTH, HEIGHT, PAD = 640, 180, 30
SERIES = (("cpu", "CPU %", "#1f77b4"), ("mem", "memory", "#2ca02c"), ("gpu", "GPU %", "#d62728"))


def _points(values: Sequence[float], times: Sequence[int], start: int, span: int) -> str:
    top = max(values) or 1.0
    inner_w, inner_h = WIDTH - 2 * PAD, HEIGHT - 2 * PAD
    return " ".join(f"{PAD + (t - start) / span * inner_w:.1f},"
                    f"{HEIGHT - PAD - v / top * inner_h:.1f}" for t, v in zip(times, values,
                                                                             strict=True))


def load_chart(samples: Sequence[Sample]) -> str:
    """An SVG of the samples (each series scaled to its own peak, which its label gives);
    a note when there are none yet."""
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="load" width="{WIDTH}" '
            f'height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
            'aria-label="load chart">')
    if len(samples) < 2:
        return (head + f'<text x="{PAD}" y="{HEIGHT // 2}" font-size="13">no load samples '
                'yet</text></svg>')
    times = [s.time for s in samples]
    start, span = times[0], max(1, times[-1] - times[0])
    series: dict[str, list[float]] = {"cpu": [s.cpu_percent for s in samples],
                                      "mem": [float(s.rss_kib) for s in samples]}
    if all(s.gpu_percent is not None for s in samples):
        series["gpu"] = [float(s.gpu_percent or 0) for s in samples]
    parts = [head, f'<rect x="{PAD}" y="{PAD}" width="{WIDTH - 2 * PAD}" '
             f'height="{HEIGHT - 2 * PAD}" fill="none" stroke="#ccc"/>']
    x = PAD
    for key, label, colour in SERIES:
        if key not in series:
            continue
        values = series[key]
        peak = max(values)
        shown = f"{peak / 1024 / 1024:.2f} GiB" if key == "mem" else f"{peak:.0f}"
        parts.append(f'<polyline class="series-{key}" fill="none" stroke="{colour}" '
                     f'stroke-width="1.5" points="{_points(values, times, start, span)}"/>')
        parts.append(f'<text x="{x}" y="{PAD - 10}" font-size="12" fill="{colour}">'
                     f'{escape(label)} (peak {escape(shown)})</text>')
        x += 190
    parts.append(f'<text x="{PAD}" y="{HEIGHT - 8}" font-size="11">{span} s, '
                 f'{len(samples)} samples</text></svg>')
    return "".join(parts)
