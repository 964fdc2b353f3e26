"""`tf-mp plan`: plan a model-parallel layout for a keras-hub backbone."""

import os

from tf_mp.cli import common

PLAN_FILE = "plan.json"


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "plan",
        help="Plan how to split a keras-hub model over devices (tf_mp.plan): "
        "print the candidates side by side and write plan.json.",
    )
    parser.add_argument(
        "--preset",
        default=common.TINY,
        help="keras-hub preset name or model directory (its backbone is "
        "planned), or 'tiny' (a small random-init BERT; the default).",
    )
    parser.add_argument("--devices", type=int, help="Devices (default: all).")
    parser.add_argument(
        "--memory-per-device", help="Budget per device, e.g. 2GB or 512MiB."
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128, help="Tokens per example.")
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument(
        "--objective", choices=("step_time", "memory"), default="step_time"
    )
    parser.add_argument(
        "--measure",
        type=int,
        default=3,
        help="Time this many of the best candidates (0: the cost model alone).",
    )
    parser.add_argument("--output", default=PLAN_FILE, help="Where to write the plan.")
    common.add_virtual_devices_argument(parser)
    parser.set_defaults(run=run)


def run(args):
    for name in ("devices", "batch_size", "seq_len"):
        common.positive(f"--{name.replace('_', '-')}", getattr(args, name))
    common.setup_devices(args)
    import tf_mp

    backbone = load_backbone(args.preset, args.seq_len)
    plan = tf_mp.plan(
        backbone,
        devices=args.devices,
        memory_per_device=args.memory_per_device,
        batch_size=args.batch_size,
        sequence_length=args.seq_len,
        optimizer=args.optimizer,
        objective=args.objective,
        measure=args.measure,
    )
    plan.summary()
    directory = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(directory, exist_ok=True)
    print(f"\nWrote {plan.save(args.output)}")
    return plan


def load_backbone(preset, seq_len):
    """A keras-hub backbone from a preset, or the tiny BERT."""
    import keras_hub

    if preset == common.TINY:
        return keras_hub.models.BertBackbone(
            vocabulary_size=1000,
            max_sequence_length=seq_len,
            **common.TINY_CONFIG,
        )
    try:
        return keras_hub.models.Backbone.from_preset(preset)
    except (FileNotFoundError, ValueError) as error:
        raise common.UsageError(
            f"--preset {preset}: not a keras-hub preset available offline or a "
            f"model directory ({str(error).splitlines()[0]})"
        ) from None
