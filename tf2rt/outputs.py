"""Every file tf2rt writes goes through here: never over an input, never half-written.

    with atomic_output("model.wts", inputs=input_files("model.ckpt")) as tmp:
        write_something(tmp)          # a temporary file in the output's own directory

The temporary file keeps the output's suffix (OpenCV and matplotlib pick the image format
from it) and is renamed over the output only when the block succeeds; on any error
(exceptions, Ctrl-C, a full disk, a file-size limit) it is removed and a file that
already existed at the output path is left untouched.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import Iterable, Iterator, Union

from .errors import Tf2rtError

PathLike = Union[str, "os.PathLike[str]"]

# Write errors that say "the output cannot be written" (not "an input is broken").
_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}
_MAX_TREE_FILES = 200_000  # files listed under a directory input (a SavedModel); far above real models


class OutputError(Tf2rtError):
    """An output path cannot be written, or would overwrite one of the inputs."""


# -- which files an input consists of --------------------------------------------------------
def _strip_checkpoint_suffix(p: Path) -> Path | None:
    """The checkpoint prefix for `PREFIX.index`, `PREFIX.meta` or `PREFIX.data-*`, else None."""
    name = p.name
    for suffix in (".index", ".meta"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return p.with_name(name[: -len(suffix)])
    if ".data-" in name:
        return p.with_name(name[: name.rindex(".data-")])
    return None


def _checkpoint_files(prefix: Path) -> set[Path]:
    """Index, data shards, .meta, the prefix itself (V1 files) and the directory's state file."""
    out = {prefix.parent / "checkpoint"}
    for suffix in (".index", ".meta", ""):
        out.add(Path(f"{prefix}{suffix}"))
    head = prefix.name + ".data-"
    try:
        with os.scandir(prefix.parent if str(prefix.parent) else ".") as it:
            for entry in it:
                if entry.name.startswith(head) or entry.name.startswith(prefix.name + "-"):  # V1 shards
                    out.add(prefix.parent / entry.name)
    except OSError:
        pass
    return out


def input_files(source: PathLike) -> set[Path]:
    """The files a model path (as the CLI accepts it) consists of; a directory in the result
    stands for everything under it (a SavedModel).

    Checkpoints: prefix, `.index`, `.data-*`, `.meta` or directory -> every file of every
    checkpoint there plus the `checkpoint` state file. Anything else -> the path itself.
    """
    p = Path(source)
    out: set[Path] = {p}
    try:
        is_dir = p.is_dir()
    except OSError:
        return out
    if is_dir:
        if (p / "saved_model.pb").exists() or (p / "saved_model.pbtxt").exists():
            return out  # the whole tree
        out.add(p / "checkpoint")
        try:
            with os.scandir(p) as it:
                for entry in it:
                    if entry.name.endswith(".index"):
                        out |= _checkpoint_files(p / entry.name[: -len(".index")])
        except OSError:
            pass
        variables = p / "variables"
        if variables.is_dir():
            out.add(variables)
        return out
    if p.name in ("saved_model.pb", "saved_model.pbtxt"):
        out.add(p.parent)
    prefix = _strip_checkpoint_suffix(p)
    if prefix is not None:
        return out | _checkpoint_files(prefix)
    if Path(f"{p}.index").exists() or Path(f"{p}.meta").exists():
        out |= _checkpoint_files(p)
    return out


# -- the checks ---------------------------------------------------------------------------------
def _real(p: Path) -> str:
    return os.path.realpath(p)


def check_not_input(path: PathLike, inputs: Iterable[PathLike] = (), what: str = "output") -> None:
    """OutputError if `path` is (by resolved path or by inode) one of `inputs` or lies under a
    directory input."""
    p = Path(path)
    real = _real(p)
    try:
        st = os.stat(p)
    except OSError:
        st = None
    for item in inputs:
        f = Path(item)
        f_real = _real(f)
        try:
            f_st = os.stat(f)
        except OSError:
            f_st = None
        same = real == f_real or (st is not None and f_st is not None and os.path.samestat(st, f_st))
        inside = f_st is not None and stat.S_ISDIR(f_st.st_mode) and real.startswith(f_real.rstrip(os.sep) + os.sep)
        if same or inside:
            where = "is" if same else "lies inside"
            raise OutputError(f"{what} {str(p)!r} {where} the input {str(f)!r}; writing it would destroy "
                              "the model - choose another output path")


def check_writable(path: PathLike, what: str = "output") -> Path:
    """OutputError unless `path` can name a new or replaced regular file in an existing directory."""
    p = Path(path)
    text = os.fspath(path)
    if not text or text.endswith(os.sep) or p.name in ("", ".", ".."):
        raise OutputError(f"{what} {text!r} names a directory; give a file name")
    parent = p.parent
    try:
        pst = os.stat(parent)
    except FileNotFoundError:
        raise OutputError(f"cannot write {what} {text!r}: directory {str(parent)!r} does not exist") from None
    except OSError as exc:
        raise OutputError(f"cannot write {what} {text!r}: {exc.strerror or exc}") from None
    if not stat.S_ISDIR(pst.st_mode):
        raise OutputError(f"cannot write {what} {text!r}: {str(parent)!r} is not a directory")
    try:
        name_max = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    if len(os.fsencode(p.name)) > name_max:
        raise OutputError(f"cannot write {what}: the file name is longer than {name_max} bytes; use a shorter name")
    try:
        st = os.stat(p)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputError(f"cannot write {what} {text!r}: {exc.strerror or exc}") from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise OutputError(f"{what} {text!r} is a directory; give a file name")
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise OutputError(f"{what} {text!r} is not a regular file (a FIFO, socket or device); choose a file path")
    return p


def _mode_for(p: Path) -> int:
    """Keep an existing file's permissions; a new file gets 0666 minus the umask, as open() would."""
    try:
        return stat.S_IMODE(os.stat(p).st_mode)
    except OSError:
        mask = os.umask(0)
        os.umask(mask)
        return 0o666 & ~mask


@contextlib.contextmanager
def atomic_output(path: PathLike, inputs: Iterable[PathLike] = (), what: str = "output") -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it over `path` only if the block succeeds.

    Refuses (OutputError) outputs that are inputs, directories or in a missing/read-only
    directory before anything is written. Write errors (full disk, file-size limit, ...) become
    OutputError; the temporary file never outlives the block."""
    p = check_writable(path, what)
    check_not_input(p, inputs, what)
    stem, suffix = (p.stem, p.suffix) if len(p.suffix) <= 16 else (p.name, "")
    tmp = p.with_name(f".{stem[:80]}.{secrets.token_hex(4)}.tmp{suffix}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise OutputError(f"cannot write {what} {str(p)!r}: {exc.strerror or exc}") from None
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, _mode_for(p))
        os.replace(tmp, p)
    except OSError as exc:
        _remove(tmp)
        if exc.errno in _WRITE_ERRNOS:
            raise OutputError(f"cannot write {what} {str(p)!r}: {exc.strerror or exc}") from None
        raise
    except BaseException:
        _remove(tmp)
        raise


def _remove(tmp: Path) -> None:
    try:
        os.unlink(tmp)
    except OSError:
        pass


def write_bytes(path: PathLike, data: bytes, inputs: Iterable[PathLike] = (), what: str = "output") -> Path:
    """Atomically write `data` to `path`."""
    with atomic_output(path, inputs, what) as tmp, open(tmp, "wb") as f:
        f.write(data)
    return Path(path)


def write_text(path: PathLike, text: str, inputs: Iterable[PathLike] = (), what: str = "output") -> Path:
    """Atomically write `text` (UTF-8) to `path`."""
    return write_bytes(path, text.encode("utf-8"), inputs, what)
