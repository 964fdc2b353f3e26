"""Files written atomically: a reader sees the old file or the new one, never a
part, also when two processes (tuner workers, mesh processes) write one path."""

import json
import os
import tempfile


def write_text(path, text):
    """Writes `text` to `path` through a temporary file in the same directory
    and one `os.replace`: the last writer wins, whole."""
    directory = os.path.dirname(os.path.abspath(path))
    handle, temporary = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp"
    )
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp's 0600, as `open` would
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def write_json(path, value):
    """`value` as indented JSON at `path`, atomically."""
    return write_text(path, json.dumps(value, indent=2) + "\n")


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask
