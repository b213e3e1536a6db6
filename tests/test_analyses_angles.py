"""Tests of lrtools.analyses.angles: angle matrix, block-wise layer statistics, images."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp

from lrtools.analyses.angles import (
    angle_matrix,
    downsampled_angle_image,
    layer_pair_mean_angles,
    nonredundant_angles,
)
from lrtools.regions import linear_region


def _direct_angles(A: np.ndarray) -> np.ndarray:
    """Independent reference: normalise, Gram matrix, arccos, in degrees (zero rows -> NaN)."""
    norms = np.sqrt(np.einsum("ij,ij->i", A, A))
    with np.errstate(invalid="ignore", divide="ignore"):
        U = A / norms[:, None]
    cos = np.clip(np.einsum("ik,jk->ij", U, U), -1.0, 1.0)
    theta = np.degrees(np.arccos(cos))
    np.fill_diagonal(theta, 0.0)
    theta[norms == 0] = np.nan
    theta[:, norms == 0] = np.nan
    return theta


def _reference_stats(A, layer, ortho_tol=5.0) -> dict[tuple[int, int], dict[str, float]]:
    """Per layer pair statistics from the full matrix, zero rows dropped, i != j."""
    ok = np.linalg.norm(A, axis=1) > 0
    A, layer = A[ok], layer[ok]
    theta = _direct_angles(A)
    U = A / np.linalg.norm(A, axis=1)[:, None]
    cos = np.clip(U @ U.T, -1, 1)
    out = {}
    layers = np.unique(layer)
    for a in layers:
        for b in layers[layers >= a]:
            rows_a, rows_b = np.flatnonzero(layer == a), np.flatnonzero(layer == b)
            t, c = theta[np.ix_(rows_a, rows_b)], cos[np.ix_(rows_a, rows_b)]
            if a == b:
                off = ~np.eye(len(rows_a), dtype=bool)
                t, c = t[off], c[off]
            out[(a, b)] = {
                "n_pairs": t.size // (2 if a == b else 1),
                "mean_angle": t.mean(),
                "std_angle": t.std(),
                "mean_cos": c.mean(),
                "mean_abs_cos": np.abs(c).mean(),
                "frac_orthogonal": np.mean(np.abs(t - 90.0) <= ortho_tol),
            }
    return out


@pytest.fixture
def layered():
    """300 random rows in 25 dimensions with a shared component, 3 layers, one zero row."""
    rng = np.random.default_rng(0)
    A = rng.standard_normal((300, 25)) * rng.uniform(0.1, 10.0, (300, 1))
    A[:, :3] += 1.5 * np.abs(A[:, :1])
    A[57] = 0.0
    layer = np.repeat([0, 1, 2], [130, 101, 69])
    return A, layer


# --------------------------------------------------------------------------------------------
# angle_matrix
# --------------------------------------------------------------------------------------------


def test_angle_matrix_matches_direct_computation(layered, small_mlp):
    A, _ = layered
    theta = angle_matrix(A)
    np.testing.assert_allclose(theta, _direct_angles(A), rtol=0, atol=1e-9, equal_nan=True)
    assert np.all(np.isnan(theta[57])) and np.all(np.isnan(theta[:, 57]))
    np.testing.assert_allclose(
        angle_matrix(A, unit="radians"), np.radians(theta), rtol=0, atol=1e-12, equal_nan=True
    )
    sub = angle_matrix(A, rows=[5, 2, 40])
    np.testing.assert_allclose(sub, theta[np.ix_([5, 2, 40], [5, 2, 40])], rtol=0, atol=1e-9)
    region = linear_region(small_mlp, np.linspace(-0.5, 0.5, 12))
    ref = _direct_angles(region.polytope.A)
    np.testing.assert_allclose(angle_matrix(region), ref, rtol=0, atol=1e-9, equal_nan=True)


def test_orthogonal_identical_and_opposite_rows():
    rng = np.random.default_rng(1)
    Q, _ = np.linalg.qr(rng.standard_normal((8, 8)))
    A = Q.T * rng.uniform(0.5, 5.0, (8, 1))  # orthogonal rows of different lengths
    theta = angle_matrix(A)
    off = ~np.eye(8, dtype=bool)
    np.testing.assert_allclose(theta[off], 90.0, rtol=0, atol=1e-10)
    B = np.stack([A[0], 3.0 * A[0], -2.0 * A[0]])
    tb = angle_matrix(B)
    np.testing.assert_allclose(tb, [[0, 0, 180], [0, 0, 180], [180, 180, 0]], atol=1e-6)
    table = layer_pair_mean_angles(A)
    assert table["frac_orthogonal"][0] == 1.0 and table["n_pairs"][0] == 28
    np.testing.assert_allclose(table["mean_abs_cos"][0], 0.0, atol=1e-15)


# --------------------------------------------------------------------------------------------
# Block-wise statistics
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", [3, 7, 64, 100, 299, 300, 1000])
def test_block_stats_equal_full_matrix_stats(layered, block):
    A, layer = layered
    ref = _reference_stats(A, layer)
    table = layer_pair_mean_angles(A, layer=layer, block=block)
    assert len(table) == len(ref) == 6
    for _, row in table.iterrows():
        want = ref[(row["layer_i"], row["layer_j"])]
        assert row["n_pairs"] == want["n_pairs"]
        for key in ("mean_angle", "mean_cos", "mean_abs_cos", "frac_orthogonal"):
            np.testing.assert_allclose(row[key], want[key], rtol=0, atol=1e-10)
        np.testing.assert_allclose(row["std_angle"], want["std_angle"], rtol=1e-8)
    assert table["zero_rows_i"].tolist() == [1, 1, 1, 0, 0, 0]
    assert table.attrs["zero_rows"] == 1 and table.attrs["unit"] == "degrees"


def test_block_stats_with_unsorted_layers_subsets_and_sparse_rows(layered):
    A, layer = layered
    rng = np.random.default_rng(2)
    perm = rng.permutation(len(A))
    keep = rng.random(len(A)) < 0.7
    base = layer_pair_mean_angles(A[keep], layer=layer[keep], block=50)
    for table in (
        layer_pair_mean_angles(A[perm], layer=layer[perm], rows=keep[perm], block=33),
        layer_pair_mean_angles(A, layer=layer, rows=np.flatnonzero(keep), block=64),
        layer_pair_mean_angles(sp.csr_matrix(A), layer=layer, rows=keep, block=41),
    ):
        cols = ["n_pairs", "mean_angle", "mean_abs_cos", "frac_orthogonal", "std_angle"]
        np.testing.assert_allclose(table[cols], base[cols], rtol=1e-12, atol=1e-10)
    rad = layer_pair_mean_angles(A, layer=layer, unit="radians")
    deg = layer_pair_mean_angles(A, layer=layer)
    np.testing.assert_allclose(np.degrees(rad["mean_angle"]), deg["mean_angle"], rtol=1e-13)


@pytest.mark.parametrize("as_csr", [False, True])
def test_sparse_and_mixed_tiles_match_the_reference(as_csr):
    """Conv-like rows (few nonzeros, multiplied as CSR) followed by dense rows."""
    rng = np.random.default_rng(6)
    m_sparse, m_dense, d = 150, 60, 200
    A = np.zeros((m_sparse + m_dense, d))
    for i in range(m_sparse):  # a local patch of 9 inputs, as a convolution unit sees
        start = rng.integers(d - 9)
        A[i, start : start + 9] = rng.standard_normal(9)
    A[m_sparse:] = rng.standard_normal((m_dense, d)) + 0.5
    A[3] = 0.0
    layer = np.repeat([0, 1], [m_sparse, m_dense])
    ref = _reference_stats(A, layer)
    for block in (40, 150, 500):
        table = layer_pair_mean_angles(sp.csr_matrix(A) if as_csr else A, layer=layer, block=block)
        for _, row in table.iterrows():
            want = ref[(row["layer_i"], row["layer_j"])]
            for key in ("mean_angle", "mean_abs_cos", "frac_orthogonal"):
                np.testing.assert_allclose(row[key], want[key], rtol=0, atol=1e-10)
    img = downsampled_angle_image(A, layer=layer, size=21, block=37)
    full = _direct_angles(A)
    cells = (np.arange(len(A)) * 21) // len(A)
    ref_img = [
        [np.nanmean(full[np.ix_(cells == p, cells == q)]) for q in range(21)] for p in range(21)
    ]
    np.testing.assert_allclose(img.image, ref_img, rtol=0, atol=1e-10)


def test_block_stats_on_cnn_region(small_cnn):
    x = np.random.default_rng(4).uniform(-0.8, 0.8, (1, 9, 9))
    region = linear_region(small_cnn, x)
    A, layer = region.polytope.A, region.layer
    ref = _reference_stats(A, layer)
    table = layer_pair_mean_angles(region, block=13)
    for _, row in table.iterrows():
        want = ref[(row["layer_i"], row["layer_j"])]
        np.testing.assert_allclose(row["mean_angle"], want["mean_angle"], rtol=0, atol=1e-10)
        np.testing.assert_allclose(row["mean_abs_cos"], want["mean_abs_cos"], atol=1e-12)


def test_memory_stays_far_below_the_full_matrix():
    m, d, block = 6000, 500, 512
    A = np.random.default_rng(5).standard_normal((m, d))
    layer = np.repeat([0, 1, 2], [2500, 2000, 1500])
    full_bytes = m * m * 8
    tracemalloc.start()
    try:
        layer_pair_mean_angles(A, layer=layer, block=block)
        _, peak_stats = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        img = downsampled_angle_image(A, layer=layer, size=300, block=block)
        _, peak_image = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak_stats < full_bytes / 10, peak_stats  # ~ a few block x block arrays
    assert peak_image < full_bytes / 10, peak_image
    np.testing.assert_allclose(np.diagonal(img.image), 90.0 * (1 - 1 / 20), atol=1.0)


# --------------------------------------------------------------------------------------------
# Downsampled image
# --------------------------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Mean of empty slice")  # cell of the zero row only: NaN
@pytest.mark.parametrize(("size", "block"), [(7, 300), (50, 64), (128, 17), (299, 100)])
def test_downsampled_image_is_the_block_mean_of_the_full_matrix(layered, size, block):
    A, layer = layered
    full = _direct_angles(A)
    m = len(A)
    cells = (np.arange(m) * size) // m
    ref = np.empty((size, size))
    for p in range(size):
        for q in range(size):
            ref[p, q] = np.nanmean(full[np.ix_(cells == p, cells == q)])
    img = downsampled_angle_image(A, layer=layer, size=size, block=block)
    np.testing.assert_allclose(img.image, ref, rtol=0, atol=1e-10, equal_nan=True)
    assert np.isnan(img.image).sum() == np.isnan(ref).sum() == (2 * size - 1 if size == 299 else 0)
    np.testing.assert_array_equal(img.layer_starts, [130, 231])
    np.testing.assert_allclose(img.boundaries, np.array([130, 231]) * size / m)
    np.testing.assert_array_equal(img.cell_rows, np.bincount(cells))


def test_full_image_when_size_is_none_or_large(layered, small_mlp):
    A, layer = layered
    for size in (None, 300, 10_000):
        img = downsampled_angle_image(A, layer=layer, size=size)
        np.testing.assert_allclose(img.image, _direct_angles(A), atol=1e-9, equal_nan=True)
        np.testing.assert_array_equal(img.boundaries, [130, 231])
    region = linear_region(small_mlp, np.linspace(-0.5, 0.5, 12))
    img = downsampled_angle_image(region, size=None, unit="radians")
    np.testing.assert_array_equal(img.layer_starts, [16, 28])
    np.testing.assert_allclose(img.image, np.radians(angle_matrix(region)), atol=1e-12)


# --------------------------------------------------------------------------------------------
# Non-redundant rows and bad inputs
# --------------------------------------------------------------------------------------------


def test_nonredundant_angles_restrict_rows(small_mlp):
    region = linear_region(small_mlp, np.linspace(-0.5, 0.5, 12))
    mask = np.zeros(region.polytope.n_rows, dtype=bool)
    mask[[0, 3, 17, 30, 31]] = True
    table = nonredundant_angles(region, mask, block=5)
    keep = ~mask
    want = layer_pair_mean_angles(region.polytope.A[keep], layer=region.layer[keep])
    cols = ["n_pairs", "mean_angle", "mean_abs_cos", "frac_orthogonal"]
    np.testing.assert_allclose(table[cols], want[cols], rtol=0, atol=1e-10)
    assert table["redundant_i"].tolist() == [2, 2, 2, 1, 1, 2]
    assert table.attrs["n_redundant"] == 5
    via_callable = nonredundant_angles(region, lambda poly: mask)
    np.testing.assert_allclose(via_callable[cols], table[cols], rtol=0, atol=1e-12)


def test_bad_inputs_raise_clear_errors(layered, small_mlp):
    A, layer = layered
    region = linear_region(small_mlp, np.zeros(12))
    with pytest.raises(ValueError, match="unit == 'deg'"):
        angle_matrix(A, unit="deg")
    with pytest.raises(ValueError, match="block == 0, must be >= 1"):
        layer_pair_mean_angles(A, block=0)
    with pytest.raises(ValueError, match="layer must have one entry per row"):
        layer_pair_mean_angles(A, layer=layer[:-1])
    with pytest.raises(ValueError, match="layer must be None for a Region"):
        layer_pair_mean_angles(region, layer=np.zeros(36, dtype=int))
    with pytest.raises(ValueError, match=r"rows as a mask must have shape \(300,\)"):
        layer_pair_mean_angles(A, rows=np.ones(5, dtype=bool))
    with pytest.raises(ValueError, match="rows must index"):
        angle_matrix(A, rows=[0, 300])
    with pytest.raises(ValueError, match="A must have 2 dimension"):
        angle_matrix(A[0])
    with pytest.raises(ValueError, match="size == 0, must be >= 1"):
        downsampled_angle_image(A, size=0)
    with pytest.raises(ValueError, match="ortho_tol == 95"):
        layer_pair_mean_angles(A, ortho_tol=95)
    with pytest.raises(ValueError, match=r"boolean array of shape \(36,\)"):
        nonredundant_angles(region, np.zeros(36))
    with pytest.raises(TypeError, match="region must be a Region"):
        nonredundant_angles(A, np.zeros(300, dtype=bool))
