"""What data files exist: names, folders, download URLs and known checksums.

One table, so that the loaders, the downloader and ``np-envs data`` agree on every file.

MNIST ``.gz`` files are checked by the SHA-256 of their *uncompressed* content: mirrors differ only
in the gzip header's timestamp, so the ``.gz`` hashes are not unique, but the content is. The
content SHA-256 values were computed from copies whose content MD5 equals the canonical MD5 (also
listed); SHA-256 is the stronger hash and, here, about twice as fast as MD5.

The SARCOS test file has a known SHA-256. The SARCOS training file has no published SHA-256; it is
checked by format (variable name, shape), by the git blob id of the GPML copy where it matches, and
against the SHA-256 recorded on its first use (see :mod:`np_envs.data.integrity`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

MNIST_MIRRORS: tuple[str, ...] = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
GPML_MIRRORS: tuple[str, ...] = (
    "https://gaussianprocess.org/gpml/data/",
    "http://www.gaussianprocess.org/gpml/data/",
)


@dataclass(frozen=True)
class DataFile:
    """One file of a data set, as stored under ``<data_dir>/<dataset>/<name>``."""

    dataset: str
    name: str
    mirrors: tuple[str, ...]
    content_sha256: str | None = None  # SHA-256 of the uncompressed content (gzip files)
    content_md5: str | None = None  # canonical MD5 of the uncompressed content (reference only)
    sha256: str | None = None  # SHA-256 of the file as stored
    gz_sha256: frozenset[str] = field(default_factory=frozenset)  # known .gz copies (informative)
    git_blob_sha1: str | None = None  # git's object id of the file, where published
    mat_variable: str | None = None
    shape: tuple[int, ...] | None = None

    @property
    def relpath(self) -> str:
        """Path relative to the data folder, e.g. ``mnist/t10k-labels-idx1-ubyte.gz``."""
        return f"{self.dataset}/{self.name}"

    @property
    def urls(self) -> tuple[str, ...]:
        """Download URLs, best first."""
        return tuple(base + self.name for base in self.mirrors)


def _mnist(
    name: str, content_sha256: str, content_md5: str, gz_sha256: str, shape: tuple[int, ...]
) -> DataFile:
    return DataFile(
        dataset="mnist",
        name=name,
        mirrors=MNIST_MIRRORS,
        content_sha256=content_sha256,
        content_md5=content_md5,
        gz_sha256=frozenset({gz_sha256}),
        shape=shape,
    )


MNIST_TRAIN_IMAGES = _mnist(
    "train-images-idx3-ubyte.gz",
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "6bbc9ace898e44ae57da46a324031adb",
    "ae46c4f260ac4905871204038b01a6c0a113631ad2d5a23f68961fc8b88747cb",
    (60_000, 28, 28),
)
MNIST_TRAIN_LABELS = _mnist(
    "train-labels-idx1-ubyte.gz",
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "a25bea736e30d166cdddb491f175f624",
    "4cef464b5d0fd20305c139d7358afe20954e5a0be436d0a975a9762a533e2f75",
    (60_000,),
)
MNIST_TEST_IMAGES = _mnist(
    "t10k-images-idx3-ubyte.gz",
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "2646ac647ad5339dbf082846283269ea",
    "8d1c48f2b24c34ae56333c3e87c95e99bc60a089031230ce093bf56699bec6b2",
    (10_000, 28, 28),
)
MNIST_TEST_LABELS = _mnist(
    "t10k-labels-idx1-ubyte.gz",
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    "27ae3e4e09519cfbb04c329615203637",
    "f03153ec6749a9b837aa118d273c38dded2e2c0817d5d584074d96c48cef8166",
    (10_000,),
)

SARCOS_TRAIN = DataFile(
    dataset="sarcos",
    name="sarcos_inv.mat",
    mirrors=GPML_MIRRORS,
    git_blob_sha1="687b7aaa5faf5a9c67fc6655fd59fd8b4539ad55",
    mat_variable="sarcos_inv",
    shape=(44_484, 28),
)
SARCOS_TEST = DataFile(
    dataset="sarcos",
    name="sarcos_inv_test.mat",
    mirrors=GPML_MIRRORS,
    sha256="161a59b5c3b4f4b404584323f181607b2acbe620eb134dc720760dc3f38f5cec",
    mat_variable="sarcos_inv_test",
    shape=(4_449, 28),
)

#: (images, labels) per MNIST split.
MNIST_SPLITS: dict[str, tuple[DataFile, DataFile]] = {
    "train": (MNIST_TRAIN_IMAGES, MNIST_TRAIN_LABELS),
    "test": (MNIST_TEST_IMAGES, MNIST_TEST_LABELS),
}

#: Every file, per data set, in the order ``np-envs data`` lists them.
DATASETS: dict[str, tuple[DataFile, ...]] = {
    "mnist": (MNIST_TRAIN_IMAGES, MNIST_TRAIN_LABELS, MNIST_TEST_IMAGES, MNIST_TEST_LABELS),
    "sarcos": (SARCOS_TRAIN, SARCOS_TEST),
}

ALL_FILES: tuple[DataFile, ...] = tuple(f for files in DATASETS.values() for f in files)
