"""vrlvr.verify.parse_frames: native vs numpy reference, geometry, strides, validation, no crashes."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vrlvr.tasks.base import fit_layout, paint_grids
from vrlvr.verify import parse_frames, patch_bounds
from vrlvr.verify.parse import patch_steps

PALETTE = np.array([[240, 240, 240], [20, 20, 20], [0, 200, 0], [230, 0, 0], [0, 90, 255]], np.uint8)


def _both(frames, grid_shape, palette, **kw):
    a = parse_frames(frames, grid_shape, palette, backend="native", **kw)
    b = parse_frames(frames, grid_shape, palette, backend="numpy", **kw)
    assert a[0].dtype == np.int8 and a[1].dtype == np.float32
    assert a[0].shape == b[0].shape == a[1].shape
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_allclose(a[1], b[1], atol=1e-4, rtol=0)
    return a


@pytest.mark.parametrize("bbox", [None, (3.5, 2.25, 40.3, 61.7), (0, 0, 48, 70)])
@pytest.mark.parametrize("patch", [0.5, 0.1, 1.0])
def test_native_matches_numpy_on_random_frames(bbox, patch):
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (2, 3, 50, 70, 3), dtype=np.uint8)  # [N, F, H, W, 3]
    labels, dist = _both(frames, (7, 9), PALETTE, bbox=bbox, patch=patch, max_dist=150.0)
    assert labels.shape == (2, 3, 7, 9)
    assert (labels == -1).any() == bool((dist > 150).any())
    assert np.all((labels == -1) == (dist > 150))


@pytest.mark.parametrize("samples", [None, 16, 5, 1])
def test_large_patches_are_read_on_a_strided_sub_grid(samples):
    rng = np.random.default_rng(5)
    frames = rng.integers(0, 256, (3, 130, 170, 3), dtype=np.uint8)  # 3x4 grid: ~43 px cells
    labels, dist = _both(frames, (3, 4), PALETTE, samples_per_side=samples)
    y0, y1, x0, x1 = patch_bounds((3, 4), (130, 170), None, 0.5)
    dy, dx = patch_steps(y0, y1, x0, x1, samples)
    if samples is None:
        assert (dy, dx) == (1, 1)
    else:  # the smallest steps that keep every patch side at or under `samples` pixels read
        assert (y1 - y0).max() > 16
        for lo, hi, d in ((y0, y1, dy), (x0, x1, dx)):
            assert -(-(hi - lo).max() // d) <= samples and (
                d == 1 or -(-(hi - lo).max() // (d - 1)) > samples
            )
    # the strided median is the median of exactly those pixels
    block = frames[:, y0[1] : y1[1] : dy, x0[2] : x1[2] : dx].reshape(3, -1, 3)
    med = np.median(block, axis=1)
    expect = np.sqrt(((med[:, None, :] - PALETTE.astype(float)) ** 2).sum(-1)).min(-1)
    np.testing.assert_allclose(dist[:, 1, 2], expect, atol=1e-4)


@pytest.mark.parametrize("values", [(255,), (0,), (0, 255), (254, 255), (0, 1), (7, 200, 255)])
@pytest.mark.parametrize("side", [1, 2, 3, 4])
def test_median_at_the_ends_of_the_byte_range(values, side):
    """Odd and even patch sizes whose middle values sit on bins 0 and 255 (histogram edges)."""
    rng = np.random.default_rng(side)
    frames = rng.choice(np.array(values, np.uint8), size=(20, side, side, 3))
    pal = np.array([[0, 0, 0], [255, 255, 255], [128, 128, 128]], np.uint8)
    _both(frames, (1, 1), pal, patch=1.0)


def test_concurrent_calls_from_python_threads_agree():
    """The native call releases the GIL: calls from several threads run at once and must not share
    state."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(6)
    videos = [rng.integers(0, 256, (4, 48, 64, 3), dtype=np.uint8) for _ in range(6)]
    expect = [parse_frames(v, (6, 8), PALETTE)[0] for v in videos]
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda v: parse_frames(v, (6, 8), PALETTE)[0], videos * 3))
    for i, labels in enumerate(got):
        np.testing.assert_array_equal(labels, expect[i % len(videos)])


def test_even_patch_median_is_the_mean_of_the_two_middle_values():
    # a 2x2 patch (cell 4 px, patch 0.5) with red values 10, 20, 30, 200: median 25, not the mean 65
    frame = np.zeros((1, 4, 4, 3), np.uint8)
    frame[0, 1:3, 1:3, 0] = [[10, 20], [30, 200]]
    pal = np.array([[25, 0, 0], [65, 0, 0]], np.uint8)
    labels, dist = _both(frame, (1, 1), pal)
    assert labels[0, 0, 0] == 0 and dist[0, 0, 0] == 0.0


def test_any_strides_without_copy_and_torch_tensors():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    base = rng.integers(0, 256, (3, 4, 40, 60, 3), dtype=np.uint8)
    views = [
        base[:, ::-1],  # negative frame stride
        base[:, :, ::-1, ::2],  # negative row stride, every other column
        base[..., ::-1],  # BGR view: negative channel stride
        np.swapaxes(base, 2, 3),  # transposed frames
    ]
    for v in views:
        a = _both(v, (5, 6), PALETTE)
        c = parse_frames(np.ascontiguousarray(v), (5, 6), PALETTE)
        np.testing.assert_array_equal(a[0], c[0])
    t = torch.from_numpy(base).permute(0, 1, 3, 2, 4)  # non-contiguous uint8 tensor
    a = parse_frames(t, (5, 6), PALETTE)
    b = parse_frames(np.ascontiguousarray(t.numpy()), (5, 6), PALETTE, backend="numpy")
    np.testing.assert_array_equal(a[0], b[0])


def test_list_of_videos_and_per_video_palettes():
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (3, 2, 30, 40, 3), dtype=np.uint8)
    pals = rng.integers(0, 256, (3, 6, 3), dtype=np.uint8)  # [N, K, 3]
    stacked = _both(frames, (3, 4), pals)
    listed = parse_frames([frames[0], frames[1][:, ::-1].copy()[:, ::-1], frames[2]], (3, 4), pals)
    np.testing.assert_array_equal(stacked[0], listed[0])
    for n in range(3):  # a per-video palette is that video's own palette
        one = parse_frames(frames[n], (3, 4), pals[n])
        np.testing.assert_array_equal(one[0], stacked[0][n])


@pytest.mark.parametrize("cell_px", [1, 3, 8])
@pytest.mark.parametrize("frame_hw", [None, (61, 97)])
def test_rendered_grids_parse_back_exactly(cell_px, frame_hw):
    rng = np.random.default_rng(cell_px)
    R, C = 7, 9
    states = rng.integers(0, len(PALETTE), (4, R, C)).astype(np.int8)
    H, W = frame_hw or (R * cell_px, C * cell_px)
    layout = fit_layout((R, C), H, W)
    deco = rng.random((R, C)) < 0.3  # rings live outside the centre patch
    frames = paint_grids(
        states,
        layout,
        PALETTE,
        background=PALETTE[1],
        decorations=deco,
        ring_colour=np.array([192, 192, 192], np.uint8),
    )
    labels, dist = _both(frames, (R, C), PALETTE, bbox=layout.bbox)
    np.testing.assert_array_equal(labels, states)
    assert float(dist.max()) == 0.0


def test_median_resists_noise_blur_and_outliers():
    rng = np.random.default_rng(3)
    R, C = 6, 6
    states = rng.integers(0, len(PALETTE), (3, R, C)).astype(np.int8)
    layout = fit_layout((R, C), 96, 96)
    frames = paint_grids(states, layout, PALETTE).astype(np.int16)
    frames += rng.normal(0, 12, frames.shape).astype(np.int16)  # pixel noise
    salt = rng.random(frames.shape[:-1]) < 0.2  # 20% outlier pixels
    frames[salt] = rng.integers(0, 256, (int(salt.sum()), 3))
    frames = np.clip(frames, 0, 255).astype(np.uint8)
    labels, _ = _both(frames, (R, C), PALETTE, bbox=layout.bbox)
    np.testing.assert_array_equal(labels, states)


def test_patch_bounds_geometry():
    y0, y1, x0, x1 = patch_bounds((4, 5), (40, 50), None, 0.5)
    # 10 px cells: the band [2.5, 7.5) holds the pixel centres 2.5 .. 6.5, rows 2..6
    np.testing.assert_array_equal(y0, [2, 12, 22, 32])
    np.testing.assert_array_equal(y1 - y0, [5] * 4)
    assert np.all(x1 - x0 == 5)
    # tiny patches still read one pixel, the one under the cell centre
    y0, y1, x0, x1 = patch_bounds((4, 5), (4, 5), None, 0.01)
    np.testing.assert_array_equal(y0, np.arange(4))
    np.testing.assert_array_equal(y1 - y0, np.ones(4))


@pytest.mark.parametrize(
    "frames, kwargs, match",
    [
        (np.zeros((2, 8, 8, 3), np.float32), {}, "uint8"),
        (np.zeros((8, 8, 3), np.uint8), {}, r"\[F, H, W, 3\] or \[N, F, H, W, 3\]"),
        (np.zeros((2, 8, 8, 4), np.uint8), {}, "3 \\(RGB\\) channels"),
        (np.zeros((0, 8, 8, 3), np.uint8), {}, "empty video"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"bbox": (0, 0, 9, 8)}, "inside the 8x8 frame"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"bbox": (-1, 0, 4, 4)}, "inside the 8x8 frame"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"bbox": (0, 0, 0, 4)}, "positive size"),
        (
            np.zeros((2, 8, 8, 3), np.uint8),
            {"palette": np.zeros((4, 4), np.uint8)},
            r"palette must be uint8 \[K, 3\]",
        ),
        (np.zeros((2, 8, 8, 3), np.uint8), {"palette": np.zeros((4, 3), np.int64)}, "palette must be uint8"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"patch": 0.0}, "patch must be a fraction"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"grid_shape": (0, 2)}, "grid_shape must be two positive"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"max_dist": -1.0}, "max_dist"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"backend": "cuda"}, "backend must be one of"),
        (np.zeros((2, 8, 8, 3), np.uint8), {"samples_per_side": 0}, "samples_per_side must be a positive"),
        ([np.zeros((2, 8, 8, 3), np.uint8), np.zeros((3, 8, 8, 3), np.uint8)], {}, "shape of frames\\[0\\]"),
        ("not frames", {}, "numpy array or torch tensor"),
    ],
)
@pytest.mark.parametrize("backend", ["native", "numpy"])
def test_bad_input_raises_value_error_saying_what_was_expected(frames, kwargs, match, backend):
    kwargs = {"grid_shape": (2, 2), "palette": PALETTE, "backend": backend, **kwargs}
    grid_shape = kwargs.pop("grid_shape")
    palette = kwargs.pop("palette")
    with pytest.raises(ValueError, match=match):
        parse_frames(frames, grid_shape, palette, **kwargs)


def test_native_module_validates_its_own_inputs():
    """Called directly (bypassing the Python checks), the C++ entry point raises ValueError too."""
    from vrlvr import _native

    good = np.zeros((2, 8, 8, 3), np.uint8)
    idx = np.array([0, 4]), np.array([4, 8])
    with pytest.raises(ValueError, match="uint8"):
        _native.parse_frames(good.astype(np.int16), *idx, *idx, PALETTE)
    with pytest.raises(ValueError, match="inside \\[0, 8\\)"):
        _native.parse_frames(good, np.array([0, 4]), np.array([4, 9]), *idx, PALETTE)
    with pytest.raises(ValueError, match="non-empty range"):
        _native.parse_frames(good, np.array([3]), np.array([3]), *idx, PALETTE)
    with pytest.raises(ValueError, match="palette"):
        _native.parse_frames(good, *idx, *idx, np.zeros((200, 3), np.uint8))
    with pytest.raises(ValueError, match="empty video"):
        _native.parse_frames([], *idx, *idx, PALETTE)
    with pytest.raises(ValueError, match="steps dy, dx must be >= 1"):
        _native.parse_frames(good, *idx, *idx, PALETTE, -1.0, 0, 1)
    with pytest.raises(ValueError, match="1-D integer array"):
        _native.parse_frames(good, "abc", np.array([4, 8]), *idx, PALETTE)


_shapes = st.tuples(st.integers(0, 3), st.integers(0, 12), st.integers(0, 12), st.sampled_from([1, 3, 4]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    shape=_shapes,
    batch=st.booleans(),
    dtype=st.sampled_from([np.uint8, np.uint8, np.uint8, np.int8, np.float32]),
    grid=st.tuples(st.integers(-1, 14), st.integers(-1, 14)),
    bbox=st.one_of(st.none(), st.tuples(*[st.one_of(st.floats(-5, 20), st.just(float("nan")))] * 4)),
    patch=st.one_of(st.floats(-0.5, 1.5), st.just(float("nan"))),
    k=st.integers(0, 130),
    max_dist=st.one_of(st.none(), st.floats(-10, 500)),
    backend=st.sampled_from(["native", "numpy"]),
    samples=st.one_of(st.none(), st.integers(-1, 20)),
)
def test_no_input_crashes_the_process(shape, batch, dtype, grid, bbox, patch, k, max_dist, backend, samples):
    F, H, W, ch = shape
    frames = np.full((2, F, H, W, ch) if batch else (F, H, W, ch), 7, dtype=dtype)
    palette = np.arange(k * 3, dtype=np.int64).reshape(k, 3).astype(np.uint8)
    try:
        labels, dist = parse_frames(
            frames,
            grid,
            palette,
            bbox=bbox,
            patch=patch,
            max_dist=max_dist,
            backend=backend,
            samples_per_side=samples,
        )
    except ValueError:
        return
    assert labels.shape == dist.shape == frames.shape[:-3] + (grid[0], grid[1])
    assert labels.min() >= -1 and labels.max() < k


def test_numpy_scalar_max_dist_and_fractional_grid_shape():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    palette = np.array([[0, 0, 0], [255, 255, 255]], np.uint8)
    for backend in ("native", "numpy"):
        labels, _ = parse_frames(frames, (2, 2), palette, max_dist=np.float32(10.0), backend=backend)
        assert (labels == 0).all()
        with pytest.raises(ValueError, match="grid_shape must be two positive ints"):
            parse_frames(frames, (2.5, 2), palette, backend=backend)
        with pytest.raises(ValueError, match="grid_shape must be two positive ints"):
            parse_frames(frames, (2,), palette, backend=backend)
