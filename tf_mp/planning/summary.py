"""`Plan.summary()`'s table: the ranked candidates side by side."""

HEADER = (
    "#",
    "mesh",
    "split",
    "fsdp",
    "MiB/device",
    "collectives",
    "compiled",
    "model s",
    "calibrated s",
    "measured s",
)


def mebibytes(n):
    return f"{n / 2**20:,.1f}"


def describe_choices(choices):
    """`"attention:heads x12, feedforward:megatron x12"`: the options chosen,
    counted by kind, replicated ones left out."""
    counts = {}
    for role, option in choices.items():
        if option == "replicated":
            continue
        key = f"{role.split(':', 1)[0]}:{option}"
        counts[key] = counts.get(key, 0) + 1
    return ", ".join(f"{k} x{n}" for k, n in sorted(counts.items())) or "none"


def describe_collectives(collectives):
    """`"12 (3.5 MiB)"`: collectives per train step and the bytes they move."""
    count = sum(v["count"] for v in collectives.values())
    moved = mebibytes(sum(v["bytes"] for v in collectives.values()))
    return f"{count} ({moved} MiB)"


def summary_table(plan, limit):
    rows = []
    for rank, c in enumerate(plan.candidates[:limit], start=1):
        mesh = f"{c['mesh']['batch']}x{c['mesh']['model']}"
        compiled = c.get("compiled_collectives")
        measured = c.get("measured_step_s")
        calibrated = c.get("calibrated_step_s")
        rows.append(
            (
                str(rank),
                mesh,
                describe_choices(c["choices"]),
                "yes" if c["fsdp"] else "no",
                mebibytes(c["bytes_per_device"]),
                describe_collectives(c["collectives"]),
                "-" if compiled is None else describe_collectives(compiled),
                f"{c['step_s']:.4g}",
                "-" if calibrated is None else f"{calibrated:.4g}",
                "-" if measured is None else f"{measured:.4g}",
            )
        )
    widths = [max(len(r[i]) for r in [HEADER, *rows]) for i in range(len(HEADER))]
    lines = [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths))
        for row in [HEADER, *rows]
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    settings = plan.settings
    lines.insert(
        0,
        f"Plan for batch_size={settings['batch_size']}, sequence_length="
        f"{settings['sequence_length']}, objective={settings['objective']!r}: "
        f"{len(plan.candidates)} candidate(s) fit"
        + (
            f" {mebibytes(settings['memory_per_device'])} MiB per device"
            if settings.get("memory_per_device")
            else ""
        ),
    )
    return "\n".join(lines)
