"""Data layer: real files load, corrupt or missing files are caught and explained, splits leak-free.

The real data live in ``<shared>/data`` beside the repository (tests needing them skip if it is
absent). Every test runs offline: the download function is replaced by one that fails as if there
were no network, and the user cache is redirected into ``tmp_path``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import scipy.io

import np_envs.data.cache as data_cache
from np_envs.data import (
    SARCOS_SCHEMES,
    DataCorruptError,
    DataError,
    DataMissingError,
    DataWarning,
    clear_cache,
    data_dir,
    load_mnist,
    load_sarcos,
    sarcos_overlap_report,
)
from np_envs.data import sarcos as sarcos_mod
from np_envs.data.integrity import record_file
from np_envs.data.registry import MNIST_TEST_IMAGES, MNIST_TEST_LABELS

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SARCOS_TEST_REL = "sarcos/sarcos_inv_test.mat"
T10K_IMAGES_REL = "mnist/t10k-images-idx3-ubyte.gz"
T10K_LABELS_REL = "mnist/t10k-labels-idx1-ubyte.gz"


class OfflineError(ConnectionError):
    """What the patched downloader raises: a machine without network."""


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No network, a private user cache, no NP_ENVS_DATA, and empty in-memory caches."""
    calls: list[str] = []

    def offline(url: str, dest: Path, progressbar: bool = False) -> None:
        calls.append(url)
        dest.write_bytes(b"half a file")  # a partial download must not survive
        raise OfflineError(f"offline (test): {url}")

    monkeypatch.setattr(data_cache, "_download", offline)
    monkeypatch.setenv("NP_ENVS_CACHE", str(tmp_path / "user-cache"))
    monkeypatch.delenv("NP_ENVS_DATA", raising=False)
    clear_cache()
    yield calls
    clear_cache()


@pytest.fixture
def shared(monkeypatch) -> Path:
    """Point NP_ENVS_DATA at the real shared data (read-only)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    monkeypatch.setenv("NP_ENVS_DATA", str(SHARED_DATA))
    return SHARED_DATA


def copy_layout(root: Path, *relpaths: str) -> Path:
    """Copy real files into ``root`` with the data-folder layout (writable copies)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data folder {SHARED_DATA} is absent")
    for rel in relpaths:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHARED_DATA / rel, root / rel)
    return root


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def row_set(rows: np.ndarray) -> set[bytes]:
    return {r.tobytes() for r in np.ascontiguousarray(rows, dtype=np.float64)}


def real_sarcos_test_rows() -> np.ndarray:
    return scipy.io.loadmat(SHARED_DATA / SARCOS_TEST_REL)["sarcos_inv_test"]


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- real data ------------------------------------------------------------------------------------


def test_mnist_loads_real_data(shared):
    for split, n in (("train", 60_000), ("test", 10_000)):
        images, labels = load_mnist(split)
        assert images.shape == (n, 784) and images.dtype == np.float32
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert images.flags.c_contiguous and not images.flags.writeable
        assert not labels.flags.writeable
        assert images.min() == 0.0 and images.max() == 1.0
        assert 0.12 < images.mean() < 0.14  # real digits: ~13 % ink
        assert np.allclose(images[:100] * 255, np.round(images[:100] * 255), atol=1e-4)
        assert set(np.unique(labels).tolist()) == set(range(10))
        assert np.bincount(labels).min() > n // 20  # every class well represented
        again = load_mnist(split)
        assert again[0] is images and again[1] is labels  # parsed once per process


def test_mnist_env_observes_the_loaded_images_bit_for_bit(shared):
    """The envs keep MNIST's pixel bytes (a quarter of the memory) and divide each batch as
    they draw it: the observations are exactly ``load_mnist``'s float32 images."""
    import gymnasium as gym

    from np_envs.data import load_mnist_pixels

    pixels, labels = load_mnist_pixels("test")
    assert pixels.dtype == np.uint8 and pixels.shape == (10_000, 784)
    assert not pixels.flags.writeable
    images, same_labels = load_mnist("test")
    assert np.array_equal(labels, same_labels)
    env = gym.make_vec("NPMNIST-v0", num_envs=64, split="test")
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and env.single_observation_space.contains(obs[0])
    assert np.array_equal(obs, images[:64])  # the test split is read in order
    stream = env.unwrapped.stream
    rows = np.array([[3, 9_999], [0, 17]])
    assert np.array_equal(stream.read_inputs(rows), images[rows])
    out = np.empty((2, 2, 784), np.float32)  # written in place, as a population's groups are
    assert stream.read_inputs(rows, out) is out and np.array_equal(out, images[rows])


def test_sarcos_test_file_scheme_is_contiguous_and_leak_free(shared):
    rows = real_sarcos_test_rows()
    x_train, y_train = load_sarcos("train", scheme="test-file")
    x_test, y_test = load_sarcos("test", scheme="test-file")
    n_test, n_guard = sarcos_mod.TEST_FILE_TEST_ROWS, sarcos_mod.TEST_FILE_GUARD_ROWS
    assert (n_test, n_guard) == (890, 10)
    assert x_train.shape == (3_549, 21) and y_train.shape == (3_549, 7)
    assert x_test.shape == (890, 21) and y_test.shape == (890, 7)
    assert len(x_train) + n_guard + len(x_test) == 4_449
    for a in (x_train, y_train, x_test, y_test):
        assert a.dtype == np.float64 and a.flags.c_contiguous and not a.flags.writeable
    test_rows = np.hstack([x_test, y_test])
    train_rows = np.hstack([x_train, y_train])
    np.testing.assert_array_equal(test_rows, rows[-890:])  # one contiguous block, the last
    np.testing.assert_array_equal(train_rows, rows[:3_549])
    assert not row_set(train_rows) & row_set(test_rows)
    counts = sarcos_mod.scheme_split("test-file").counts()
    assert counts == {"train": 3_549, "guard": 10, "test": 890, "dropped": 0}


def test_sarcos_gpml_test_split_reads_the_test_file(shared):
    x, y = load_sarcos("test")
    np.testing.assert_array_equal(np.hstack([x, y]), real_sarcos_test_rows())


def test_gpml_without_training_file_names_the_test_file_scheme(shared, isolated):
    for scheme in ("gpml", "leak-free"):
        with pytest.raises(DataMissingError) as err:
            load_sarcos("train", scheme=scheme)
        message = str(err.value)
        assert "sarcos_inv.mat" in message and 'split_scheme="test-file"' in message
    assert isolated == []  # never downloads into NP_ENVS_DATA


def test_gpml_offline_in_user_cache_also_names_test_file(isolated):
    with pytest.raises(DataError, match="test-file") as err:
        load_sarcos("train")
    assert "https://gaussianprocess.org/gpml/data/sarcos_inv.mat" in str(err.value)
    assert isolated  # a download was attempted (and failed as offline)


# --- corrupt files --------------------------------------------------------------------------------


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_mnist_file_is_detected_and_not_used(tmp_path, monkeypatch, damage):
    root = copy_layout(tmp_path / "data", T10K_IMAGES_REL, T10K_LABELS_REL)
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    bad = root / T10K_IMAGES_REL
    if damage == "flip":
        flip_byte(bad, bad.stat().st_size // 2)  # inside the compressed payload
    else:
        truncate_half(bad)
    for _ in range(2):  # never cached as if good
        with pytest.raises(DataCorruptError) as err:
            load_mnist("test")
        message = str(err.value)
        assert "t10k-images-idx3-ubyte.gz" in message and str(bad) in message
        assert MNIST_TEST_IMAGES.content_sha256 in message  # expected checksum
        assert "np-envs data fetch" in message
    shutil.copyfile(SHARED_DATA / T10K_IMAGES_REL, bad)  # repaired: now it loads
    assert load_mnist("test")[0].shape == (10_000, 784)


def test_mnist_checks_content_not_gzip_header(tmp_path, monkeypatch):
    """A re-gzipped copy (other header, as on mirrors) is fine; changed content in a valid gzip
    stream is caught by the content MD5 (the gzip CRC cannot catch it)."""
    root = copy_layout(tmp_path / "data", T10K_IMAGES_REL, T10K_LABELS_REL)
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    labels_path = root / T10K_LABELS_REL
    content = gzip.decompress(labels_path.read_bytes())
    labels_path.write_bytes(gzip.compress(content, mtime=0))
    assert load_mnist("test")[1].shape == (10_000,)

    changed = bytearray(content)
    changed[100] = (changed[100] + 1) % 10  # one label, still a valid digit
    labels_path.write_bytes(gzip.compress(bytes(changed), mtime=0))
    clear_cache()
    with pytest.raises(DataCorruptError) as err:
        load_mnist("test")
    assert hashlib.sha256(bytes(changed)).hexdigest() in str(err.value)  # actual
    assert MNIST_TEST_LABELS.content_sha256 in str(err.value)  # expected
    assert "27ae3e4e09519cfbb04c329615203637" in str(err.value)  # the canonical MD5, for reference


@pytest.mark.parametrize("damage", ["flip", "truncate"])
def test_corrupt_sarcos_test_file_is_detected(tmp_path, monkeypatch, damage):
    root = copy_layout(tmp_path / "data", SARCOS_TEST_REL)
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    bad = root / SARCOS_TEST_REL
    if damage == "flip":
        flip_byte(bad, 500_000)  # a float in the middle of the matrix
    else:
        truncate_half(bad)
    actual = hashlib.sha256(bad.read_bytes()).hexdigest()
    for scheme in ("test-file", "gpml"):
        with pytest.raises(DataCorruptError) as err:
            load_sarcos("test", scheme=scheme)
        message = str(err.value)
        assert "sarcos_inv_test.mat" in message and str(bad) in message
        assert sarcos_mod.SARCOS_TEST.sha256 in message and actual in message


# --- missing files, no network --------------------------------------------------------------------


def test_missing_files_in_empty_data_dir(tmp_path, monkeypatch, isolated):
    root = tmp_path / "empty"
    root.mkdir()
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    assert data_dir() == root.resolve()
    with pytest.raises(DataMissingError) as err:
        load_mnist("train")
    message = str(err.value)
    for name in ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"):
        assert name in message and str(root / "mnist" / name) in message
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message
    assert "np-envs data fetch" in message
    assert isolated == [] and listing(root) == []  # NP_ENVS_DATA is never written into


def test_offline_download_fails_cleanly_in_user_cache(tmp_path, isolated):
    cache = tmp_path / "user-cache"
    assert data_dir() == cache.resolve()
    with pytest.raises(DataMissingError) as err:
        load_mnist("test")
    message = str(err.value)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        assert name in message and f"https://storage.googleapis.com/cvdf-datasets/mnist/{name}" in (
            message
        )
    assert str(cache / "mnist") in message and "np-envs data fetch" in message
    assert "offline (test)" in message
    assert len(isolated) == 4  # two mirrors per file
    assert not cache.exists()  # no half-written file, not even an empty folder


def test_download_installs_only_verified_copies(tmp_path, monkeypatch):
    copy_layout(tmp_path / "src", T10K_IMAGES_REL, T10K_LABELS_REL)
    corrupt_first_mirror = {"done": False}

    def fake_download(url: str, dest: Path, progressbar: bool = False) -> None:
        name = url.rsplit("/", 1)[1]
        data = (tmp_path / "src" / "mnist" / name).read_bytes()
        if "images" in name and not corrupt_first_mirror["done"]:
            corrupt_first_mirror["done"] = True
            data = data[:1000]  # first mirror serves a truncated file: rejected
        dest.write_bytes(data)

    monkeypatch.setattr(data_cache, "_download", fake_download)
    images, labels = load_mnist("test")
    assert images.shape == (10_000, 784) and labels.shape == (10_000,)
    cache = tmp_path / "user-cache"
    assert listing(cache) == ["mnist", T10K_IMAGES_REL, T10K_LABELS_REL]


# --- training file: leak-free scheme, recorded checksum, overlap ----------------------------------


@pytest.fixture
def synthetic_train(tmp_path, monkeypatch) -> Path:
    """A 44,484 x 28 ``sarcos_inv.mat`` whose every 10th row is a real test-file row."""
    root = copy_layout(tmp_path / "data", SARCOS_TEST_REL)
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(44_484, 28))
    matrix[::10] = real_sarcos_test_rows()  # rows 0, 10, ..., 44480: all 4,449 test rows
    matrix[5] = matrix[44_001]  # a training row that equals a leak-free test row: must be dropped
    path = root / "sarcos" / "sarcos_inv.mat"
    scipy.io.savemat(path, {"sarcos_inv": matrix})
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    return path


def test_leak_free_scheme_on_synthetic_training_file(synthetic_train, tmp_path):
    root = synthetic_train.parents[1]
    before = listing(root)
    with pytest.warns(DataWarning, match="recorded"):
        x_train, y_train = load_sarcos("train", scheme="leak-free")
    x_test, y_test = load_sarcos("test", scheme="leak-free")
    assert x_test.shape == (4_449, 21) and y_test.shape == (4_449, 7)
    assert x_train.shape == (39_934, 21) and y_train.shape == (39_934, 7)  # 39,935 - 1 duplicate
    counts = sarcos_mod.scheme_split("leak-free").counts()
    assert counts == {"train": 39_934, "guard": 100, "test": 4_449, "dropped": 1}
    assert sum(counts.values()) == 44_484
    train_rows, test_rows = np.hstack([x_train, y_train]), np.hstack([x_test, y_test])
    assert not row_set(train_rows) & row_set(test_rows)
    written = scipy.io.loadmat(synthetic_train)["sarcos_inv"]
    np.testing.assert_array_equal(test_rows, written[-4_449:])

    records = json.loads(record_file().read_text())
    entry = records[str(synthetic_train.resolve())]
    assert entry["sha256"] == hashlib.sha256(synthetic_train.read_bytes()).hexdigest()
    assert record_file().is_relative_to(tmp_path / "user-cache")
    assert listing(root) == before  # nothing written into NP_ENVS_DATA

    report = sarcos_overlap_report()
    assert report["test_rows"] == 4_449 and report["rows_in_train"] == 4_449
    assert report["fraction"] == pytest.approx(1.0)
    assert load_sarcos("train")[0].shape == (44_484, 21)  # gpml train uses the whole file


def test_changed_training_file_fails_against_recorded_checksum(synthetic_train):
    with pytest.warns(DataWarning):
        load_sarcos("train")
    recorded = json.loads(record_file().read_text())[str(synthetic_train.resolve())]["sha256"]
    flip_byte(synthetic_train, synthetic_train.stat().st_size - 1000)  # shape stays valid
    clear_cache()  # a new process: only the JSON record remains
    with pytest.raises(DataCorruptError) as err:
        load_sarcos("train", scheme="leak-free")
    message = str(err.value)
    assert "sarcos_inv.mat" in message and str(synthetic_train) in message
    assert recorded in message and "recorded" in message


def test_training_file_with_wrong_shape_is_rejected(tmp_path, monkeypatch):
    path = tmp_path / "data" / "sarcos" / "sarcos_inv.mat"
    path.parent.mkdir(parents=True)
    scipy.io.savemat(path, {"sarcos_inv": np.zeros((100, 28))})
    monkeypatch.setenv("NP_ENVS_DATA", str(tmp_path / "data"))
    with pytest.raises(DataCorruptError, match=r"44484, 28"):
        load_sarcos("train")
    assert not record_file().exists()  # nothing recorded for a bad file


# --- arguments ------------------------------------------------------------------------------------


def test_unknown_split_or_scheme_raises_value_error():
    assert SARCOS_SCHEMES == ("gpml", "leak-free", "test-file")
    with pytest.raises(ValueError, match=r"'valid'.*'test'.*'train'"):
        load_mnist("valid")
    with pytest.raises(ValueError, match=r"'val'.*'train', 'test'"):
        load_sarcos("val")
    with pytest.raises(ValueError, match=r"'random'.*'gpml', 'leak-free', 'test-file'"):
        load_sarcos("train", scheme="random")


# --- command line ---------------------------------------------------------------------------------


def test_cli_where_and_verify_on_shared_data(shared, capsys):
    from np_envs.cli.main import main

    assert main(["data", "where"]) == 0
    out = capsys.readouterr().out
    assert str(shared) in out and "train-images-idx3-ubyte.gz" in out
    assert "sarcos_inv_test.mat" in out and "missing" in out  # training file absent here

    assert main(["data", "verify"]) == 1  # the training file is missing here: not a success
    captured = capsys.readouterr()
    assert "MISSING  sarcos/sarcos_inv.mat" in captured.out
    assert "--allow-missing" in captured.err

    assert main(["data", "verify", "--allow-missing"]) == 0
    out = capsys.readouterr().out
    assert "OK       mnist/train-images-idx3-ubyte.gz" in out
    assert "OK       sarcos/sarcos_inv_test.mat" in out
    assert "MISSING  sarcos/sarcos_inv.mat" in out


def test_cli_verify_reports_corruption_and_overlap(synthetic_train, capsys):
    from np_envs.cli.main import main

    assert main(["data", "verify", "--dataset", "sarcos"]) == 0
    out = capsys.readouterr().out
    assert "OK       sarcos/sarcos_inv.mat" in out and "100.0 %" in out
    flip_byte(synthetic_train.parent / "sarcos_inv_test.mat", 500_000)
    assert main(["data", "verify", "--dataset", "sarcos"]) == 1
    assert "CORRUPT  sarcos/sarcos_inv_test.mat" in capsys.readouterr().out


def test_cli_fetch_offline_exits_1_with_instructions(tmp_path, capsys):
    from np_envs.cli.main import main

    assert main(["data", "fetch", "--dataset", "sarcos"]) == 1
    captured = capsys.readouterr()
    assert "sarcos_inv_test.mat" in captured.out and "offline (test)" in captured.out
    assert str(tmp_path / "user-cache" / "sarcos" / "sarcos_inv_test.mat") in captured.out
    assert "test-file" in captured.err


def test_cli_verify_fails_on_a_missing_file_even_with_the_rest_good(tmp_path, monkeypatch, capsys):
    from np_envs.cli.main import main

    root = copy_layout(tmp_path / "data", T10K_IMAGES_REL, T10K_LABELS_REL)
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    assert main(["data", "verify", "--dataset", "mnist"]) == 1
    out = capsys.readouterr().out
    assert "OK       mnist/t10k-images-idx3-ubyte.gz" in out
    assert "MISSING  mnist/train-images-idx3-ubyte.gz" in out and "2 missing" in out
    assert main(["data", "verify", "--dataset", "mnist", "--allow-missing"]) == 0
    flip_byte(root / T10K_LABELS_REL, 100)
    capsys.readouterr()
    assert main(["data", "verify", "--dataset", "mnist", "--allow-missing"]) == 1  # corrupt


def test_cli_fetch_exits_0_only_when_every_file_is_good(shared, capsys):
    from np_envs.cli.main import main

    assert main(["data", "fetch", "--dataset", "mnist"]) == 0
    assert "All 4 file(s) present and verified." in capsys.readouterr().out
    assert main(["data", "fetch", "--dataset", "sarcos"]) == 1  # training file absent, read-only
    captured = capsys.readouterr()
    assert "1 file(s) could not be fetched: sarcos_inv.mat" in captured.err
    assert "OK       sarcos/sarcos_inv_test.mat" in captured.out


def test_cache_path_that_is_a_file_is_not_a_folder(tmp_path, monkeypatch, capsys, isolated):
    from np_envs.cli.main import main

    not_a_folder = tmp_path / "cache-file"
    not_a_folder.write_text("I am a file")
    monkeypatch.setenv("NP_ENVS_CACHE", str(not_a_folder))
    assert main(["data", "fetch", "--dataset", "sarcos"]) == 1
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert f"{not_a_folder} is a file, not a folder" in text
    assert "read-only" not in text
    assert "NP_ENVS_CACHE" in text  # says which setting to fix
    with pytest.raises(DataMissingError) as err:
        load_sarcos("test")
    message = str(err.value)
    assert "is a file, not a folder" in message and "read-only" not in message
    assert "NP_ENVS_CACHE" in message
    assert isolated == []  # nothing was attempted: there is nowhere to put a download
    assert not_a_folder.read_text() == "I am a file"

    monkeypatch.setenv("NP_ENVS_DATA", str(not_a_folder))
    with pytest.raises(DataMissingError) as err:
        load_sarcos("test")
    message = str(err.value)
    assert f"NP_ENVS_DATA={not_a_folder.resolve()} cannot hold the files" in message
    assert "read-only" not in message


def test_read_only_cache_warning_does_not_claim_a_record(synthetic_train, tmp_path, monkeypatch):
    cache = tmp_path / "read-only-cache"
    cache.mkdir()
    cache.chmod(0o555)
    monkeypatch.setenv("NP_ENVS_CACHE", str(cache))
    try:
        with pytest.warns(DataWarning) as caught:
            load_sarcos("train")
        message = str(caught[0].message)
        assert "recorded in" not in message
        assert "kept in memory for this process only" in message
        assert f"{cache} is read-only" in message and "NP_ENVS_CACHE" in message
        assert not record_file().exists()

        from np_envs.data import check
        from np_envs.data.registry import SARCOS_TRAIN

        clear_cache()
        status = check.check_file(SARCOS_TRAIN)
        assert status.status == check.OK
        assert "recorded in" not in status.detail and "in memory" in status.detail
    finally:
        cache.chmod(0o755)


def test_leak_free_split_with_no_training_rows_left_says_why(tmp_path, monkeypatch):
    root = copy_layout(tmp_path / "data", SARCOS_TEST_REL)
    rng = np.random.default_rng(1)
    test_block = rng.normal(size=(4_449, 28))
    matrix = test_block[np.arange(44_484) % 4_449]  # every row repeats a row of the last block
    matrix[-4_449:] = test_block
    path = root / "sarcos" / "sarcos_inv.mat"
    scipy.io.savemat(path, {"sarcos_inv": matrix})
    monkeypatch.setenv("NP_ENVS_DATA", str(root))
    with pytest.warns(DataWarning), pytest.raises(DataError) as err:
        load_sarcos("train", scheme="leak-free")
    message = str(err.value)
    assert 'split_scheme="leak-free" leaves no training rows' in message
    assert "39,935 rows of sarcos_inv.mat" in message and str(path) in message
    assert "np-envs data verify" in message
