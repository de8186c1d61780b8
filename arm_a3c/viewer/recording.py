"""`view.py --record`: the viewer's frames streamed into a GIF or an MP4 file as they are drawn, so memory stays
flat however many frames are asked for, and a recording stopped by Ctrl-C or SIGTERM keeps what it had written.

Both formats carry `MARKER` (the GIF in a comment block, the MP4 in its metadata), so a later recording may replace
a file arm-a3c recorded, and never one it did not.
"""

from __future__ import annotations

import struct
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np

from arm_a3c.errors import UserError
from arm_a3c.files import file_contains, refuse_foreign, temporary_beside

MARKER = b"recorded by arm-a3c view.py"
FORMATS = (".gif", ".mp4")
GIF_COLOURS = 128  # per frame, median cut (each frame has its own palette)


def is_our_recording(path: Path) -> bool:
    return file_contains(path, MARKER)


def check_record_path(path: Path) -> None:
    """Refuse a --record path before anything is drawn: a wrong suffix, or a file arm-a3c did not record."""
    if path.suffix.lower() not in FORMATS:
        raise UserError(f"--record {path}: name the file with .gif or .mp4")
    refuse_foreign(path, is_our_recording, "--record")
    if not path.parent.is_dir():
        raise UserError(f"--record {path}: the folder {path.parent} does not exist")


class GifStream:
    """An animated GIF written a frame at a time: a header without a global palette, then each frame with its own
    (Pillow's per-frame encoder, `GifImagePlugin.getdata`), then the trailer on `close`."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int):
        from PIL import GifImagePlugin, Image

        self._image, self._encode = Image, GifImagePlugin.getdata
        self.size, self.duration_ms = size, int(1000 / fps)
        self._file = open(path, "wb")
        width, height = size
        colour_resolution = 0x70  # 8 bits per primary; no global colour table
        self._file.write(b"GIF89a" + struct.pack("<HHBBB", width, height, colour_resolution, 0, 0))
        self._file.write(b"!\xff\x0bNETSCAPE2.0\x03\x01" + struct.pack("<H", 0) + b"\x00")  # loop for ever
        self._file.write(b"!\xfe" + bytes([len(MARKER)]) + MARKER + b"\x00")  # a comment block
        self.frames = 0

    def add(self, rgb: bytes) -> None:
        frame = self._image.frombytes("RGB", self.size, rgb).quantize(colors=GIF_COLOURS,
                                                                      method=self._image.Quantize.MEDIANCUT)
        for chunk in self._encode(frame, duration=self.duration_ms, include_color_table=True):
            self._file.write(chunk)
        self.frames += 1

    def close(self) -> None:
        try:
            self._file.write(b";")
        finally:
            self._file.close()


class Mp4Stream:
    """An H.264 video (yuv420p, so even sizes: a pixel is cropped where one is odd) through imageio's ffmpeg,
    which takes each frame as it comes."""

    def __init__(self, path: Path, size: tuple[int, int], fps: int):
        try:
            import imageio.v2 as imageio
            import imageio_ffmpeg  # noqa: F401  (the ffmpeg binary imageio writes MP4 with)
        except ImportError:
            raise UserError("--record .mp4 needs imageio and imageio-ffmpeg: pip install -r requirements.txt") from None
        self.width, self.height = size
        self.even = (self.height - self.height % 2, self.width - self.width % 2)
        self._writer = imageio.get_writer(path, format="FFMPEG", fps=fps, codec="libx264", quality=8,
                                          macro_block_size=1, ffmpeg_log_level="error",
                                          output_params=["-pix_fmt", "yuv420p", "-metadata",
                                                         f"comment={MARKER.decode()}"])
        self.frames = 0

    def add(self, rgb: bytes) -> None:
        frame = np.frombuffer(rgb, dtype=np.uint8).reshape(self.height, self.width, 3)
        self._writer.append_data(frame[:self.even[0], :self.even[1]])
        self.frames += 1

    def close(self) -> None:
        self._writer.close()


@contextmanager
def recording(path: Path, size: tuple[int, int], fps: int) -> Iterator[GifStream | Mp4Stream]:
    """A stream into a temporary file beside `path`. Leaving the block closes it and renames it to `path` if it
    holds a frame; an error inside, or a disk that will not take the frames (full, say: one line), removes it."""
    try:
        partial = temporary_beside(path, suffix=".partial" + path.suffix.lower())
    except OSError as err:
        raise UserError(f"--record {path}: cannot write in {path.parent} ({err.strerror}); pass another --record") \
            from None
    try:
        stream = (GifStream if path.suffix.lower() == ".gif" else Mp4Stream)(partial, size, fps)
        try:
            yield stream
        except (OSError, ValueError) as err:  # a full disk; ffmpeg's pipe broken by one
            raise _write_failed(path, err) from None
        finally:
            closing_error = _close(stream)
        if closing_error is not None:
            raise _write_failed(path, closing_error)
        if stream.frames:
            partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)


def _close(stream: GifStream | Mp4Stream) -> BaseException | None:
    try:
        stream.close()
    except (OSError, ValueError) as err:
        return err
    return None


def _write_failed(path: Path, err: BaseException) -> UserError:
    """The one line for a recording the disk would not take (full, say); nothing of it is left behind."""
    reason = getattr(err, "strerror", None) or str(err)[:120] or type(err).__name__
    return UserError(f"--record {path}: writing the recording failed ({reason}); nothing was kept: free some disk "
                     f"space or pass another --record")
