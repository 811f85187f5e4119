"""Writing and reading frames: MP4 (H.264, yuv420p, via imageio's ffmpeg) and PNG.

yuv420p subsamples chroma 2x2, so H.264 needs even frame sides. Frames with an odd height or width
(e.g. a 7x7 grid at 5 px cells = 35x35) are padded by one pixel at the bottom / right edge,
repeating the edge pixels; the grid's Layout keeps its top-left origin, so the recorded geometry
stays valid for the padded video (readers may crop back to the recorded height x width).
imageio's default macro-block resize (to multiples of 16) is disabled: it would rescale the grid.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["write_mp4", "read_video", "write_png", "even_pad", "ffmpeg_reason", "X264_PRESETS"]

X264_PRESETS = (
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
)

_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff"}
_BANNER = ("ffmpeg version", "built with", "configuration:", "lib", "=== stderr ===", "Could not load meta")


def ffmpeg_reason(text: str) -> str:
    """The informative last lines of an ffmpeg error (its version banner and build flags dropped)."""
    lines = [ln.strip() for ln in str(text).splitlines()]
    useful = [ln for ln in lines if ln and not ln.startswith(_BANNER)]
    return "; ".join(useful[-2:]) if useful else (lines[0] if lines else "unknown ffmpeg error")


def even_pad(frames: np.ndarray) -> np.ndarray:
    """Pad [F, H, W, 3] frames to even H and W by repeating the last row / column."""
    F, H, W, _ = frames.shape
    ph, pw = H % 2, W % 2
    if not ph and not pw:
        return frames
    return np.pad(frames, ((0, 0), (0, ph), (0, pw), (0, 0)), mode="edge")


def write_mp4(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: int = 16,
    crf: int = 18,
    preset: str = "ultrafast",
    threads: int = 0,
) -> None:
    """Write uint8 [F, H, W, 3] frames as an H.264 / yuv420p MP4 (constant rate factor ``crf``:
    0 = lossless luma, 18 = visually lossless, 23 = x264's default). ``preset`` is x264's speed
    preset: "ultrafast" (default) encodes the flat-coloured puzzle videos 2-3x faster than
    "veryfast" at the same crf, for somewhat larger files. ``threads``: x264 threads (0 = auto;
    1 saves about a quarter of the CPU time when several videos are encoded in parallel).
    ValueError for bad arguments; OSError (one line) when ffmpeg fails; a failed write leaves no file."""
    import imageio.v2 as imageio

    frames = np.asarray(frames)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or len(frames) == 0:
        raise ValueError(f"frames must be non-empty uint8 [F, H, W, 3], got {frames.dtype} {frames.shape}")
    if fps <= 0:
        raise ValueError(f"fps must be > 0, got {fps}")
    if not 0 <= int(crf) <= 51:
        raise ValueError(f"crf must lie in 0..51, got {crf}")
    if preset not in X264_PRESETS:  # ffmpeg would fail after opening the file, with a broken pipe
        raise ValueError(f"unknown x264 preset {preset!r}; presets: {', '.join(X264_PRESETS)}")
    frames = even_pad(frames)
    try:
        _write_frames(imageio, path, frames, fps, crf, preset, threads)
    except BaseException as exc:
        # never leave a 0-byte or truncated video behind; say what ffmpeg said, on one line
        try:
            os.unlink(path)
        except OSError:
            pass
        if isinstance(exc, (OSError, RuntimeError, ValueError)) and not isinstance(exc, FileNotFoundError):
            reason = ffmpeg_reason(str(exc))
            raise OSError(f"ffmpeg could not write {os.fspath(path)}: {reason}") from None
        raise
    if os.path.getsize(path) == 0:  # ffmpeg can fail on its own side without a Python error
        os.unlink(path)
        raise OSError(f"ffmpeg wrote nothing to {os.fspath(path)} (preset {preset!r}, crf {crf})")


def _write_frames(imageio, path, frames: np.ndarray, fps, crf, preset, threads) -> None:
    writer = imageio.get_writer(
        os.fspath(path),
        format="FFMPEG",
        mode="I",
        fps=fps,
        codec="libx264",
        pixelformat="yuv420p",
        macro_block_size=1,
        ffmpeg_log_level="error",
        output_params=["-crf", str(int(crf)), "-preset", str(preset), "-threads", str(int(threads))],
    )
    try:
        for frame in frames:
            writer.append_data(frame)
    finally:
        writer.close()


def read_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of a video file as uint8 [F, H, W, 3]. FileNotFoundError when missing; ValueError
    (one line: what ffmpeg found wrong) for an image, a truncated or an unreadable file."""
    import imageio.v2 as imageio

    name = os.fspath(path)
    if os.path.isdir(name):
        raise ValueError(f"{name} is a folder, not a video file")
    if not os.path.isfile(name):
        raise FileNotFoundError(f"video {name} does not exist")
    suffix = os.path.splitext(name)[1].lower()
    if suffix in _IMAGE_SUFFIXES:
        raise ValueError(f"{name} is an image ({suffix[1:].upper()}), not a video: give the video file")
    if os.path.getsize(name) == 0:
        raise ValueError(f"video {name} is empty (0 bytes)")
    try:
        reader = imageio.get_reader(name, format="FFMPEG")
    except (OSError, RuntimeError) as exc:
        raise ValueError(f"cannot read video {name}: {ffmpeg_reason(str(exc))}") from None
    try:
        frames = [np.asarray(f)[..., :3] for f in reader]
    except (OSError, RuntimeError, IndexError) as exc:
        raise ValueError(f"cannot read video {name}: {ffmpeg_reason(str(exc))}") from None
    finally:
        reader.close()
    if not frames:
        raise ValueError(f"video {name} holds no frames")
    return np.stack(frames).astype(np.uint8)


def write_png(path: str | os.PathLike, frame: np.ndarray) -> None:
    """Write one uint8 [H, W, 3] frame as PNG (lossless)."""
    import imageio.v2 as imageio

    frame = np.asarray(frame)
    if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[-1] != 3:
        raise ValueError(f"frame must be uint8 [H, W, 3], got {frame.dtype} {frame.shape}")
    imageio.imwrite(os.fspath(path), frame, format="PNG", compress_level=1)
