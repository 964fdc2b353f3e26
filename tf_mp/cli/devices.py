"""`tf-mp devices`: what TensorFlow sees, and the mesh shapes that fit."""

from tf_mp.cli import common
from tf_mp.cli import outputs


def add_parser(subparsers):
    parser = subparsers.add_parser(
        "devices", help="List devices and the mesh shapes that fit them."
    )
    common.add_virtual_devices_argument(parser)
    parser.set_defaults(run=run)


def run(args):
    common.setup_devices(args)
    import tensorflow as tf

    from tf_mp import parallel

    processes = parallel.num_processes()
    rows = []
    for kind in ("TPU", "GPU", "CPU"):
        physical = tf.config.list_physical_devices(kind)
        local = parallel.list_devices(kind, local=True)
        every = parallel.list_devices(kind)
        if physical or every:
            row = [kind, len(physical), len(local)]
            if processes > 1:
                row.append(len(every))
            rows.append((*row, _names(local)))
    header = ["type", "physical", "logical"]
    if processes > 1:
        header = ["type", "physical", "logical here", "logical, all processes"]
        print(
            f"Process {parallel.process_id()} of {processes} "
            "(tf_mp.initialize / tf-mp launch).\n"
        )
    print(outputs.table(rows, [*header, "logical names"]))
    kind = next(r[0] for r in rows if r[-2])
    count = next(r[-2] for r in rows if r[-2])
    shapes = [f"batch={b},model={count // b}" for b in _divisors(count)]
    print(f"\nMesh shapes over the {count} {kind} device(s) (--mesh):")
    for shape in shapes:
        print(f"  {shape}")
    if kind == "CPU" and count == 1:
        print("  (on CPU, --virtual-devices 8 splits the CPU into 8 devices)")
    return 0


def _divisors(n):
    return [d for d in range(1, n + 1) if n % d == 0]


def _names(devices, shown=3):
    names = [d.split("device:")[-1] for d in devices]
    more = f" (+{len(names) - shown})" if len(names) > shown else ""
    return ", ".join(names[:shown]) + more
