"""Files from elsewhere are untrusted: what the reader checks before it reads.

- only regular files (a FIFO would hang the reader, a device would never end);
- no HDF5 dataset with external storage (its bytes live in another file, e.g.
  ``/etc/passwd``), no virtual dataset, no external link: a run file is one file;
- declared sizes within limits before anything is read (an ``.npz`` member's size in
  the zip directory, an HDF5 dataset's declared shape), so a small file cannot make the
  reader allocate gigabytes;
- real numbers only (no complex, string or object arrays) for time, weights and drift;
- finite numbers in the arrays the verdict depends on (``/drift``, ``/inputs``).

Every problem is a :class:`~plasticity.errors.BadInput` naming the file and the array.
"""

import os
import stat
import zipfile

import numpy as np

from ..errors import BadInput, os_error_reason

#: the most objects (groups and datasets) the reader walks in one file
MAX_OBJECTS = 100_000
#: an array the reader would load at once may take at most this share of the memory
#: available now (and at most MAX_ARRAY_BYTES)
MEMORY_SHARE = 0.5
MAX_ARRAY_BYTES = 16 << 30


def available_memory():
    """Bytes of memory available to a new allocation now (Linux ``MemAvailable``, else
    the free physical pages), or None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def array_limit():
    """The most bytes one array may declare."""
    memory = available_memory()
    return MAX_ARRAY_BYTES if memory is None else min(MAX_ARRAY_BYTES, int(MEMORY_SHARE * memory))


def check_declared(path, name, shape, itemsize=8, limit=None):
    """:class:`BadInput` when an array declared with ``shape`` would exceed the limit."""
    limit = array_limit() if limit is None else limit
    size = itemsize
    for n in shape:
        size *= int(n)
    if size > limit:
        raise BadInput(f"{path}: {name} declares shape {tuple(int(n) for n in shape)} "
                       f"({size / 2**30:.3g} GiB), more than the {limit / 2**30:.3g} GiB "
                       "the reader loads at once")


def check_regular_file(path):
    """The path must be a readable regular file (symlinks followed)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise BadInput(f"{path}: no such file") from None
    except PermissionError:
        raise BadInput(f"{path}: permission denied") from None
    except OSError as error:
        raise BadInput(f"{path}: {os_error_reason(error)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise BadInput(f"{path}: is a directory, not a run file")
    if not stat.S_ISREG(info.st_mode):
        raise BadInput(f"{path}: not a regular file (a pipe, socket or device)")
    if not os.access(path, os.R_OK):
        raise BadInput(f"{path}: permission denied (not readable)")


def check_real(path, name, dtype):
    """Time, weights and drift must be real numbers (integers or floats)."""
    if np.dtype(dtype).kind not in "fiu":
        raise BadInput(f"{path}: {name} is not numeric (holds {np.dtype(dtype)} values, not real numbers)")


def check_finite(path, name, values, first_record=0):
    """:class:`BadInput` naming the array and the first record (row) that is not finite."""
    values = np.asarray(values)
    if values.dtype.kind in "fiu" and not np.all(np.isfinite(values)):
        bad = np.flatnonzero(~np.isfinite(values).reshape(values.shape[0], -1).all(axis=1)) \
            if values.ndim >= 1 and values.shape[0] else [0]
        where = f"record {first_record + int(bad[0])}" if values.ndim >= 2 else \
            f"entry {first_record + int(bad[0])}"
        raise BadInput(f"{path}: {name} has non-finite values (first at {where})")


def check_npz(path):
    """Before ``np.load``: every member a plain ``.npy`` whose uncompressed size (from the
    zip directory) and declared shape are within the limit."""
    limit = array_limit()
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
            total = sum(m.file_size for m in members)
            if total > limit:
                raise BadInput(f"{path}: the .npz members unpack to {total / 2**30:.3g} GiB, more "
                               f"than the {limit / 2**30:.3g} GiB the reader loads at once")
            for member in members:
                if not member.filename.endswith(".npy"):
                    continue
                with archive.open(member) as handle:
                    version = np.lib.format.read_magic(handle)
                    read_header = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                                   else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read_header(handle, max_header_size=1 << 16)
                name = member.filename[:-4]
                check_declared(path, f"array {name!r}", shape, dtype.itemsize, limit)
    except BadInput:
        raise
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as error:
        raise BadInput(f"{path}: cannot read as .npz ({type(error).__name__})") from None


def check_hdf5_objects(path, f):
    """Walk every link of an open HDF5 file without following external links: refuse
    external links, datasets with external storage and virtual datasets."""
    import h5py

    seen = 0
    pending = [("", f)]
    while pending:
        prefix, group = pending.pop()
        for key in group:
            seen += 1
            if seen > MAX_OBJECTS:
                raise BadInput(f"{path}: more than {MAX_OBJECTS} objects: not a run file")
            name = f"{prefix}/{key}"
            link = group.get(key, getlink=True)
            if isinstance(link, h5py.ExternalLink):
                raise BadInput(f"{path}: {name} is an external link (to {link.filename}): a run "
                               "file must not point into other files")
            if isinstance(link, h5py.SoftLink):
                continue    # resolves inside this file; its target is walked itself
            try:
                obj = group[key]
            except (KeyError, OSError, RuntimeError) as error:
                raise BadInput(f"{path}: {name} cannot be read ({type(error).__name__})") from None
            if isinstance(obj, h5py.Group):
                pending.append((name, obj))
            elif isinstance(obj, h5py.Dataset):
                if obj.is_virtual:
                    raise BadInput(f"{path}: {name} is a virtual dataset: a run file must not "
                                   "point into other files")
                if obj.id.get_create_plist().get_external_count() > 0:
                    raise BadInput(f"{path}: {name} keeps its data in external files: a run "
                                   "file must not point into other files")
