"""Fetching the facades archive: progress bar, size and checksum checks, atomic rename, safe extraction."""

from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

#: The URL the authors' datasets/download_pix2pix_dataset.sh uses.
FACADES_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/facades.tar.gz"
#: sha256 of facades.tar.gz. Not published by the authors, so not pinned: the archive's size is checked
#: against Content-Length, and every extracted file against FACADES_MD5SUMS (md5sum -c format).
FACADES_SHA256: str | None = None
FACADES_MD5SUMS = Path(__file__).with_name("facades.md5")
FACADES_COUNTS = {"train": 400, "val": 100, "test": 106}
#: Where a local copy may already be (the second is where these project machines keep it).
LOCAL_COPIES = (Path("datasets/facades"), Path("../shared/datasets/facades"))


class DownloadError(RuntimeError):
    pass


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def download(url: str, dest: Path, sha256: str | None = None, size: int | None = None,
             progress: bool = True, timeout: float = 60) -> Path:
    """Download ``url`` to ``dest`` through a temp file renamed into place only once its size (expected,
    else the server's Content-Length) and sha256 (when given) check out. A failed download leaves
    nothing behind, and an existing good ``dest`` is reused."""
    dest = Path(dest)
    good_size = size is None or (dest.is_file() and dest.stat().st_size == size)
    if dest.is_file() and good_size and (sha256 is None or sha256_of(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    h, received = hashlib.sha256(), 0
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            expected = size if size is not None else (int(length) if length else None)
            if size is not None and length and int(length) != size:
                raise DownloadError(f"{url}: the server announces {int(length):,} bytes, expected {size:,}")
            with open(tmp, "wb") as f, tqdm(total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                                            desc=f"downloading {dest.name}", disable=not progress) as bar:
                while chunk := response.read(1 << 20):
                    f.write(chunk)
                    h.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        if expected is not None and received != expected:
            raise DownloadError(f"{url}: truncated download ({received:,} of {expected:,} bytes); run again")
        digest = h.hexdigest()
        if sha256 is not None and digest != sha256:
            raise DownloadError(f"{url}: checksum mismatch (sha256 {digest}, expected {sha256}); run again")
        os.replace(tmp, dest)
        if progress:
            print(f"downloaded {dest} ({received:,} bytes, sha256 {digest})")
        return dest
    except http.client.IncompleteRead as e:
        got = received + len(e.partial)
        raise DownloadError(f"{url}: truncated download ({got:,} bytes received); run again") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
        if isinstance(e, DownloadError):
            raise
        raise DownloadError(f"{url}: download failed ({e}); check the connection or pass --data DIR") from None
    finally:
        tmp.unlink(missing_ok=True)


def safe_extract(archive: Path, dest: Path) -> None:
    """Extract a tar archive, refusing members that are links, devices or that escape ``dest``."""
    dest = Path(dest).resolve()
    with tarfile.open(archive) as tar:
        members = []
        for m in tar.getmembers():
            target = (dest / m.name).resolve()
            if not (m.isfile() or m.isdir()) or os.path.isabs(m.name) or not target.is_relative_to(dest):
                raise DownloadError(f"{archive}: unsafe archive member {m.name!r}")
            members.append(m)
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, members=members, filter="data")
        else:  # pragma: no cover - Python < 3.11.4
            tar.extractall(dest, members=members)


def verify_md5sums(root: Path, md5sums: Path) -> None:
    """Check every file listed in ``md5sums`` (``md5sum`` output, paths relative to ``root``)."""
    for line in md5sums.read_text().splitlines():
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        path = root / name.lstrip("*")
        if not path.is_file():
            raise DownloadError(f"{path}: missing from the downloaded archive; delete the download and run again")
        if hashlib.md5(path.read_bytes()).hexdigest() != digest:
            raise DownloadError(f"{path}: checksum mismatch (md5); delete the download and run again")


def ensure_dataset(cache_dir: Path, name: str = "facades", url: str = FACADES_URL, sha256: str | None = FACADES_SHA256,
                   counts: dict[str, int] | None = None, progress: bool = True, md5sums: Path | None = None) -> Path:
    """``cache_dir/name`` with its train/ (val/, test/) folders, downloaded and unpacked if missing.

    Unpacks into a temp folder and renames the result into place, so an interrupted run never leaves
    a half-extracted data set that looks complete.
    """
    cache_dir = Path(cache_dir)
    final = cache_dir / name
    if (final / "train").is_dir():
        return final
    archive = download(url, cache_dir / f"{name}.tar.gz", sha256=sha256, progress=progress)
    tmp = cache_dir / f".{name}.{os.getpid()}.extract"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        safe_extract(archive, tmp)
        root = tmp / name if (tmp / name / "train").is_dir() else tmp
        if not (root / "train").is_dir():
            raise DownloadError(f"{archive}: no {name}/train folder inside; delete it and run again")
        for split, n in (counts or {}).items():
            found = len(list((root / split).glob("*")))
            if found != n:
                raise DownloadError(f"{archive}: {split}/ has {found} files, expected {n}; delete it and run again")
        if md5sums is not None:
            verify_md5sums(root, md5sums)
        os.replace(root, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def find_or_download_facades(cache_dir: Path, progress: bool = True) -> Path:
    for candidate in (*LOCAL_COPIES, Path(cache_dir) / "facades"):
        if (candidate / "train").is_dir():
            return candidate
    print(f"no local facades copy; downloading {FACADES_URL} into {cache_dir}")
    return ensure_dataset(Path(cache_dir), counts=FACADES_COUNTS, progress=progress, md5sums=FACADES_MD5SUMS)
