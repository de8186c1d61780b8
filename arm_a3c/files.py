"""Writing files without losing any: atomically (a temporary file in the same folder, flushed and renamed over
the old one, so a crash leaves the old file or the new one), and over an existing file only when arm-a3c wrote it.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable

from arm_a3c.errors import UserError

PARTIAL_SUFFIX = ".partial"  # a temporary file's name: .NAME.XXXXXX.partial beside NAME


def temporary_beside(path: Path, suffix: str = PARTIAL_SUFFIX) -> Path:
    """A new empty file in `path`'s folder, named after it, with the permissions a plain new file gets (mkstemp's
    0600 would make the result private)."""
    path = Path(path)
    handle, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(name, 0o666 & ~umask)
    return Path(name)


def write_atomically(path: Path, data: bytes | Callable[[BinaryIO], None], suffix: str = PARTIAL_SUFFIX) -> None:
    """Write `data` (bytes, or a function that writes to the open file) to `path` so that a crash at any moment
    leaves either the old file or the new one; the temporary file is `temporary_beside(path, suffix)`. Raises
    OSError; the temporary file is gone either way."""
    path = Path(path)
    tmp = temporary_beside(path, suffix)
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def occupied(path: Path) -> bool:
    """Whether a file, folder or link (a dangling one too: writing it would create its target) is at `path`."""
    return Path(path).is_symlink() or Path(path).exists()


def refuse_foreign(path: Path, ours: Callable[[Path], bool], flag: str) -> None:
    """A `UserError` when `path` exists and `ours(path)` says arm-a3c did not write it: nothing a user owns is
    overwritten. `flag` names the option that chose the path (`--out`, say)."""
    path = Path(path)
    if not occupied(path):
        return
    if path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name in it")
    if not path.is_file() or path.is_symlink() or not ours(path):
        raise UserError(f"{flag} {path}: a file of that name exists and arm-a3c did not write it; nothing was "
                        f"written: move it away or give another {flag}")


def file_contains(path: Path, marker: bytes, chunk: int = 1 << 20) -> bool:
    """Whether `path`'s bytes hold `marker` (read a chunk at a time: a recording may be large)."""
    tail = b""
    with open(path, "rb") as f:
        while block := f.read(chunk):
            if marker in tail + block:
                return True
            tail = block[-len(marker):]
    return False


PNG_SOFTWARE = "arm-a3c"  # the Software text of every PNG picture arm-a3c writes outside a run directory


def png_info():
    """Pillow's PNG text for a picture arm-a3c writes (`save(path, pnginfo=png_info())`), which `is_our_png`
    recognises."""
    from PIL.PngImagePlugin import PngInfo

    info = PngInfo()
    info.add_text("Software", PNG_SOFTWARE)
    return info


def is_our_png(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.format == "PNG" and str(image.info.get("Software", "")).startswith(PNG_SOFTWARE)
    except (OSError, UnidentifiedImageError, ValueError):
        return False


def json_with_keys(*keys: str) -> Callable[[Path], bool]:
    """An ownership test for a JSON file arm-a3c writes: an object (or a list of objects) with all of `keys`."""
    def ours(path: Path) -> bool:
        import json

        try:
            data = json.loads(Path(path).read_text())
        except (OSError, ValueError, UnicodeDecodeError):
            return False
        items = data if isinstance(data, list) else [data]
        return bool(items) and all(isinstance(item, dict) and all(k in item for k in keys) for item in items)

    return ours


def unused_path(path: Path) -> Path:
    """`path`, or NAME-2.SUFFIX, NAME-3.SUFFIX, ... where `path` exists: a new file's name that replaces nothing."""
    path, n = Path(path), 1
    candidate = path
    while occupied(candidate):
        n += 1
        candidate = path.with_name(f"{path.stem}-{n}{path.suffix}")
    return candidate
