"""Storage backend that keeps objects as files under one private directory."""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import stat
import tempfile
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import BinaryIO

from .base import (
    READ_CHUNK,
    ClosingIterator,
    InstallGuard,
    ObjectChanged,
    ObjectExists,
    ObjectInfo,
    ObjectNotFound,
    ObjectTooLarge,
    Spool,
    Storage,
    StorageError,
    StoredObject,
    UploadTicket,
    check_disposition,
    check_expires_in,
    check_range,
    check_upload_limits,
    validate_content_type,
    validate_key,
)

log = logging.getLogger(__name__)

# Bookkeeping lives beside the objects, on the same filesystem so os.replace stays atomic.
# validate_key refuses dot-leading segments, so no key can ever name these.
TMP_DIR = ".tmp"
META_DIR = ".meta"

# Half-written uploads older than this are debris from a crash, not uploads in progress.
STALE_TMP_SECONDS = 24 * 3600


class LocalStorage(Storage):
    """Objects are files under root; content types are kept in small sidecar files."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        """Use root (an absolute path) as the storage directory; nothing is touched yet."""
        path = Path(root)
        if not path.is_absolute():
            raise ValueError(f"local storage root must be an absolute path, got {str(path)!r}")
        # normpath rather than resolve(): the directory may not exist until init().
        self.root = Path(os.path.normpath(path))
        self.url = self.root.as_uri()
        # Where the root really is, worked out once rather than on every key: should it move
        # later (a directory above it replaced by a symlink), every key resolves elsewhere and
        # is refused, as a planted symlink is.
        self._real_root = os.path.realpath(self.root)

    # -- paths ---------------------------------------------------------------------------------

    def _path(self, key: str, base: str | None = None) -> Path:
        validate_key(key)
        top = self.root if base is None else self.root / base
        path = top / key
        # Keys cannot contain "..", but a symlink planted inside the tree could still point
        # elsewhere; resolving the path catches that before any byte is read or written.
        real_root = self._real_root
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            raise StorageError(f"storage {self.url}: key {key!r} resolves outside the root")
        return path

    def _require_root(self) -> None:
        if not self.root.is_dir():
            raise StorageError(
                f"storage {self.url}: directory {self.root} does not exist; initialise storage"
            )

    # -- browser-direct transfers: not available, the app moves the bytes itself ---------------

    def presigned_post(
        self, key: str, *, content_type: str, max_bytes: int, expires_in: int
    ) -> UploadTicket | None:
        """Return None: local storage has no upload endpoint of its own."""
        validate_key(key)
        validate_content_type(content_type)
        check_upload_limits(max_bytes=max_bytes)
        check_expires_in(expires_in)
        return None

    def presigned_put(
        self, key: str, *, content_type: str, size: int, sha256_hex: str, expires_in: int
    ) -> UploadTicket | None:
        """Return None: local storage has no upload endpoint of its own."""
        validate_key(key)
        validate_content_type(content_type)
        check_upload_limits(size=size, sha256_hex=sha256_hex)
        check_expires_in(expires_in)
        return None

    def read_url(
        self,
        key: str,
        *,
        expires_in: int,
        content_type: str | None = None,
        disposition: str | None = None,
        version_id: str | None = None,
    ) -> str | None:
        """Return None: the app streams local files itself (and keeps no versions)."""
        validate_key(key)
        check_expires_in(expires_in)
        if content_type is not None:
            validate_content_type(content_type)
        if disposition is not None:
            check_disposition(disposition)
        return None

    # -- objects -------------------------------------------------------------------------------

    def put_stream(
        self,
        key: str,
        stream: BinaryIO,
        *,
        content_type: str,
        max_bytes: int | None = None,
        guard: InstallGuard | None = None,
    ) -> ObjectInfo:
        """Copy stream into key via a temp file and an atomic rename; raise ObjectTooLarge."""
        path, meta_path = self._put_paths(key, content_type, max_bytes)
        fd, tmp_name = self._temp_file("put-")
        try:
            with os.fdopen(fd, "wb") as out:
                total = self._copy(stream, out, key, max_bytes)
                try:
                    out.flush()
                    # Data must be on disk before the rename makes it visible, or a crash can
                    # leave a complete-looking but empty file.
                    os.fsync(out.fileno())
                except OSError as exc:
                    raise StorageError(f"storage {self.url}: writing {key!r}: {exc}") from exc
            if guard is not None:
                guard()
            self._install(tmp_name, path, key)
            self._write_meta(meta_path, content_type, key)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp_name)
            raise
        log.debug("stored %s (%d bytes) in %s", key, total, self.url)
        return self.head(key)

    def spool(self) -> Spool:
        """A file in the storage's own temporary folder, which adopt() renames into place.

        On the same filesystem as the objects, so an upload written into it (the form's file,
        by the form parser) is stored without writing its bytes a second time.
        """
        self._require_root()
        fd, path = self._temp_file("spool-")
        return Spool(io.FileIO(fd, "r+"), path=path, owner=self)

    def adopt(
        self,
        key: str,
        spool: Spool,
        *,
        content_type: str,
        max_bytes: int | None = None,
        guard: InstallGuard | None = None,
    ) -> ObjectInfo:
        """Rename our own spool into place, with put_stream()'s checks; others are copied."""
        if spool.owner is not self or spool.path is None:
            return super().adopt(
                key, spool, content_type=content_type, max_bytes=max_bytes, guard=guard
            )
        with spool:
            path, meta_path = self._put_paths(key, content_type, max_bytes)
            try:
                spool.flush()
                size = os.fstat(spool.fileno()).st_size
                if max_bytes is not None and size > max_bytes:
                    raise ObjectTooLarge(
                        f"storage {self.url}: upload for {key!r} exceeds {max_bytes} bytes"
                    )
                # As in put_stream: on disk before the rename makes it visible.
                os.fsync(spool.fileno())
            except OSError as exc:
                raise StorageError(f"storage {self.url}: writing {key!r}: {exc}") from exc
            if guard is not None:
                guard()
            self._install(spool.path, path, key)
            spool.give_up_file()
            self._write_meta(meta_path, content_type, key)
        log.debug("adopted %s (%d bytes) in %s", key, size, self.url)
        return self.head(key)

    def _put_paths(self, key: str, content_type: str, max_bytes: int | None) -> tuple[Path, Path]:
        """Check what put_stream() and adopt() are given; where the object and its type go."""
        path = self._path(key)
        meta_path = self._path(key, META_DIR)
        validate_content_type(content_type)
        if max_bytes is not None and max_bytes < 0:
            raise ValueError(f"max_bytes must be >= 0, got {max_bytes}")
        self._require_root()
        return path, meta_path

    def _temp_file(self, prefix: str) -> tuple[int, str]:
        """A new file (mode 0600) in the temporary folder beside the objects: its fd and path."""
        tmp_dir = self.root / TMP_DIR
        try:
            os.makedirs(tmp_dir, mode=0o700, exist_ok=True)
            return tempfile.mkstemp(dir=tmp_dir, prefix=prefix, suffix=".part")
        except OSError as exc:
            raise StorageError(f"storage {self.url}: cannot create a temp file: {exc}") from exc

    def take(self, source: str, dest: str) -> ObjectInfo:
        """Hard-link source to dest (which fails if dest exists), then unlink source.

        The link names the inode that source named at that instant; a later PUT to source
        installs a new inode by rename and never touches what dest now holds.
        """
        src, dst = self._path(source), self._path(dest)
        content_type = self._read_meta(source)
        try:
            os.makedirs(dst.parent, mode=0o700, exist_ok=True)
            os.link(src, dst)
        except FileExistsError as exc:
            raise ObjectExists(f"storage {self.url}: {dest!r} already exists") from exc
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"storage {self.url}: no object {source!r}") from exc
        except OSError as exc:
            raise StorageError(f"storage {self.url}: taking {source!r}: {exc}") from exc
        _fsync_dir(dst.parent)
        if content_type is not None:
            self._write_meta(self._path(dest, META_DIR), content_type, dest)
        self.delete(source)
        return self.head(dest)

    def list_keys(self, prefix: str) -> Iterator[StoredObject]:
        """Walk the folder for prefix; bookkeeping folders (names starting with '.') are skipped."""
        base = self._path(prefix.rstrip("/"))
        for folder, dirs, files in os.walk(base):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in files:
                path = Path(folder) / name
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue  # deleted while we walked
                key = path.relative_to(self.root).as_posix()
                modified = datetime.fromtimestamp(st.st_mtime, UTC)
                yield StoredObject(key=key, size=st.st_size, modified=modified)

    def _copy(self, stream: BinaryIO, out: BinaryIO, key: str, max_bytes: int | None) -> int:
        total = 0
        while True:
            # Reads stay outside the OSError wrapper: a client that disconnects mid-upload is
            # the caller's concern, not a storage fault.
            chunk = stream.read(READ_CHUNK)
            if not chunk:
                return total
            total += len(chunk)
            if max_bytes is not None and total > max_bytes:
                raise ObjectTooLarge(
                    f"storage {self.url}: upload for {key!r} exceeds {max_bytes} bytes"
                )
            try:
                out.write(chunk)
            except OSError as exc:
                raise StorageError(f"storage {self.url}: writing {key!r}: {exc}") from exc

    def _install(self, tmp_name: str, path: Path, key: str) -> None:
        try:
            for attempt in (1, 2):
                os.makedirs(path.parent, mode=0o700, exist_ok=True)
                try:
                    os.replace(tmp_name, path)
                    break
                except FileNotFoundError:
                    # A concurrent delete() may prune the fresh, still-empty parent directory
                    # between makedirs and replace; one retry settles that race.
                    if attempt == 2:
                        raise
            _fsync_dir(path.parent)
        except OSError as exc:
            raise StorageError(f"storage {self.url}: installing {key!r}: {exc}") from exc

    def _write_meta(self, meta_path: Path, content_type: str, key: str) -> None:
        try:
            os.makedirs(meta_path.parent, mode=0o700, exist_ok=True)
            fd, tmp_name = tempfile.mkstemp(dir=self.root / TMP_DIR, prefix="meta-")
            try:
                with os.fdopen(fd, "w", encoding="ascii") as out:
                    out.write(content_type)
                os.replace(tmp_name, meta_path)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp_name)
                raise
        except OSError as exc:
            raise StorageError(f"storage {self.url}: writing metadata of {key!r}: {exc}") from exc

    def _read_meta(self, key: str) -> str | None:
        try:
            return self._path(key, META_DIR).read_text(encoding="ascii").strip() or None
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        except (OSError, UnicodeDecodeError) as exc:
            log.warning("unreadable content type for %s in %s: %s", key, self.url, exc)
            return None

    def head(self, key: str) -> ObjectInfo:
        """Return size, etag and content type of key; raise ObjectNotFound if absent."""
        info = self.stat(key)
        return ObjectInfo(size=info.size, etag=info.etag, content_type=self._read_meta(key))

    def stat(self, key: str) -> ObjectInfo:
        """Size and etag from one stat(); the content type (a file of its own) is left out."""
        path = self._path(key)
        try:
            st = os.stat(path)
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(f"storage {self.url}: no object {key!r}") from exc
        except OSError as exc:
            raise StorageError(f"storage {self.url}: stat {key!r}: {exc}") from exc
        if not stat.S_ISREG(st.st_mode):
            # A directory here is just the common prefix of other keys.
            raise ObjectNotFound(f"storage {self.url}: no object {key!r}")
        return ObjectInfo(size=st.st_size, etag=_etag(st), content_type=None)

    def read(
        self,
        key: str,
        start: int = 0,
        end: int | None = None,
        chunk_size: int = 1 << 20,
        *,
        etag: str | None = None,
    ) -> Iterator[bytes]:
        """Stream bytes start..end (inclusive, clamped to the file); raise ObjectNotFound.

        With `etag`, the open file itself must have it (ObjectChanged otherwise): the bytes
        streamed are those of the file that was checked, even if the key is replaced between
        a caller's stat() and this open.
        """
        check_range(start, end, chunk_size)
        path = self._path(key)
        try:
            # Opened now, not lazily, so a missing key fails before the caller commits to a
            # response; the same handle then serves every chunk even if the key is replaced.
            fh = open(path, "rb")  # noqa: SIM115 - closed by ClosingIterator
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(f"storage {self.url}: no object {key!r}") from exc
        except OSError as exc:
            raise StorageError(f"storage {self.url}: open {key!r}: {exc}") from exc
        try:
            st = os.fstat(fh.fileno())
            if etag is not None and _etag(st) != etag:
                raise ObjectChanged(f"storage {self.url}: {key!r} is no longer the object read")
            last = st.st_size - 1 if end is None else min(end, st.st_size - 1)
            fh.seek(start)
        except BaseException:
            fh.close()
            raise
        return ClosingIterator(_chunks(fh, last - start + 1, chunk_size), fh.close)

    def delete(self, key: str) -> None:
        """Remove key and its metadata; a missing key is fine."""
        for base in (None, META_DIR):
            path = self._path(key, base)
            try:
                os.unlink(path)
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                continue
            except OSError as exc:
                raise StorageError(f"storage {self.url}: delete {key!r}: {exc}") from exc
            self._prune(path.parent, self.root if base is None else self.root / base)

    def _prune(self, directory: Path, stop: Path) -> None:
        # Every clip gets its own directory; without pruning they would pile up empty forever.
        while directory != stop and stop in directory.parents:
            try:
                os.rmdir(directory)
            except OSError:
                return  # not empty (other keys live here) or already gone
            directory = directory.parent

    # -- setup and health ----------------------------------------------------------------------

    def check(self) -> None:
        """Confirm the root directory exists and is writable."""
        self._require_root()
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"storage {self.url}: directory {self.root} is not writable")

    def init(self, *, cors_origins: list[str]) -> list[str]:
        """Create the root directory (mode 0700) and its bookkeeping directories."""
        lines: list[str] = []
        try:
            if self.root.is_dir():
                mode = stat.S_IMODE(self.root.stat().st_mode)
                if mode & 0o077:
                    os.chmod(self.root, 0o700)
                    lines.append(f"tightened {self.root} from mode {mode:04o} to 0700")
                else:
                    lines.append(f"directory {self.root} already exists (mode {mode:04o})")
            elif self.root.exists():
                raise StorageError(f"storage {self.url}: {self.root} exists but is not a directory")
            else:
                os.makedirs(self.root, mode=0o700)
                # makedirs honours the umask; chmod makes the result independent of it.
                os.chmod(self.root, 0o700)
                lines.append(f"created directory {self.root} (mode 0700)")
            for name in (TMP_DIR, META_DIR):
                os.makedirs(self.root / name, mode=0o700, exist_ok=True)
            removed = self._sweep_stale_tmp()
        except OSError as exc:
            raise StorageError(f"storage {self.url}: cannot initialise: {exc}") from exc
        if removed:
            lines.append(f"removed {removed} stale partial upload(s)")
        if cors_origins:
            lines.append("CORS not applicable: the app serves local files itself")
        for line in lines:
            log.info("storage init: %s", line)
        return lines

    def list_unfinished_uploads(self, prefixes: Sequence[str]) -> Iterator[StoredObject]:
        """The files in the temporary folder: each an object (or a form's spool) its writer
        never renamed into place. They have no key yet, and the folder is all the storage's
        own, so prefixes do not narrow it; each is named `.tmp/<file>`."""
        try:
            entries = list(os.scandir(self.root / TMP_DIR))
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"storage {self.url}: listing {TMP_DIR}: {exc}") from exc
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):  # renamed or removed meanwhile
                # Ours are named by mkstemp, never with a dot first; others are left alone.
                if entry.is_file(follow_symlinks=False) and not entry.name.startswith("."):
                    st = entry.stat()
                    yield StoredObject(
                        f"{TMP_DIR}/{entry.name}",
                        st.st_size,
                        datetime.fromtimestamp(st.st_mtime, UTC),
                        upload_id=entry.name,
                    )

    def abort_unfinished_upload(self, item: StoredObject) -> None:
        """Remove a temporary file list_unfinished_uploads gave; one gone already is fine."""
        name = item.upload_id or ""
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"not a temporary file of this storage: {item.key!r}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.root / TMP_DIR / name)

    def _sweep_stale_tmp(self) -> int:
        """Remove the unfinished uploads not written to for a day (init runs without the
        database, so this is its own cut-off rather than garbage collection's)."""
        cutoff = datetime.now(UTC) - timedelta(seconds=STALE_TMP_SECONDS)
        stale = [item for item in self.list_unfinished_uploads(()) if item.modified < cutoff]
        for item in stale:
            self.abort_unfinished_upload(item)
        return len(stale)


def _etag(st: os.stat_result) -> str:
    # os.replace always installs a new inode, so an overwrite changes this even when size and
    # mtime happen to match; hashing keeps inode numbers out of HTTP headers.
    raw = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
    return hashlib.blake2b(raw, digest_size=16).hexdigest()


def _chunks(fh: BinaryIO, remaining: int, chunk_size: int) -> Iterator[bytes]:
    while remaining > 0:
        chunk = fh.read(min(chunk_size, remaining))
        if not chunk:
            return  # file shrank under us; a short body beats a hang
        remaining -= len(chunk)
        yield chunk


def _fsync_dir(directory: Path) -> None:
    # The rename itself lives in the directory entry; without this a power cut can undo it.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
