"""Saving a model on a mesh: one complete file, written atomically by one process.

Keras writes `save_weights` / `save` files in place, so a crash leaves half a
file under the real name, and on a mesh over several processes every process
would write the same path at once. Here Keras writes to a temporary name in the
same directory, which is renamed onto the real one (`os.replace`, atomic on
POSIX and Windows). Reading a variable gathers its shards, a collective every
process of the mesh must join, so every process runs Keras's save; only
process 0 keeps its file, and the others wait for its rename before going on.
"""

import functools
import os
import tempfile
import uuid

from tf_mp.parallel.dtensor import processes


def attach_saving(model, distribution):
    """Makes `model.save_weights` / `model.save` atomic and single-writer."""
    for name in ("save_weights", "save"):
        keras_save = getattr(type(model), name)
        save = functools.partial(_save, model, keras_save, distribution)
        functools.update_wrapper(save, keras_save)
        object.__setattr__(model, name, save)


def _save(model, keras_save, distribution, filepath, *args, **kwargs):
    overwrite = kwargs.get("overwrite", args[0] if args else True)
    path = os.fspath(filepath) if isinstance(filepath, os.PathLike) else filepath
    if (
        not isinstance(path, str)
        or "://" in path  # Remote file systems (gs://): no rename to rely on.
        or kwargs.get("max_shard_size") is not None  # Several files.
        or kwargs.get("zipped") is False  # A directory.
        or (not overwrite and os.path.exists(path))  # Keras asks first.
    ):
        return keras_save(model, filepath, *args, **kwargs)
    directory, name = os.path.split(os.path.abspath(path))
    leader = processes.process_id() == 0
    # The temporary name keeps the real one's suffix, which Keras checks.
    temporary = os.path.join(
        directory if leader else tempfile.gettempdir(),
        f".tmp-{uuid.uuid4().hex}-{name}",
    )
    try:
        result = keras_save(model, temporary, *args, **kwargs)
        if leader:
            os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    processes.barrier(distribution.mesh.dtensor_mesh)
    return result
