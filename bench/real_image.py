#!/usr/bin/env python3
"""Layer tars of real files (binaries, libraries, text) for the benchmarks' "real" data.

    python3 bench/real_image.py OUT_DIR [--size 400MiB] [--layers 6] [ROOT...]

Lists the regular files and symlinks under the ROOTs (default: /usr/bin /usr/sbin
/usr/lib /usr/libexec /usr/include /usr/share), sorted by path, and keeps a sample of
about --size bytes: files taken in the order of a hash of their path while they fit (files
over half a layer's share left out), so the sample has the mix of binaries, libraries and
text of the whole tree and the same files on every run. The sample is cut, in path order, into --layers
tars of about equal size (OUT_DIR/layer-1.tar, ...), with fixed metadata (owner 0:0, no
names, mtime 0; mode and link targets as on disk), so two runs on one machine give the
same bytes. Prints one line: the files, the bytes of content, and a sha256 over the tars
(the same line means the same data).
"""
import argparse
import hashlib
import os
import stat
import sys
import tarfile

DEFAULT_ROOTS = ["/usr/bin", "/usr/sbin", "/usr/lib", "/usr/libexec", "/usr/include", "/usr/share"]


def parse_size(s):
    units = {"": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20, "g": 1 << 30, "gib": 1 << 30}
    num = s.rstrip("kKmMgGiIbB")
    return int(float(num) * units[s[len(num):].lower()])


def listing(roots):
    """(path, lstat) of regular files and symlinks under roots, sorted by path."""
    out = []
    for root in roots:
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in filenames:
                p = os.path.join(dirpath, name)
                try:
                    st = os.lstat(p)
                except OSError:
                    continue
                if stat.S_ISLNK(st.st_mode) or (stat.S_ISREG(st.st_mode) and os.access(p, os.R_OK)):
                    out.append((p, st))
    out.sort(key=lambda e: e[0])
    return out


def add(tar, path, st):
    info = tarfile.TarInfo(path.lstrip("/"))
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if stat.S_ISLNK(st.st_mode):
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        tar.addfile(info)
        return 0
    with open(path, "rb") as f:
        info.size = os.fstat(f.fileno()).st_size
        tar.addfile(info, f)
    return info.size


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("roots", nargs="*", default=DEFAULT_ROOTS)
    ap.add_argument("--size", default="400MiB")
    ap.add_argument("--layers", type=int, default=6)
    a = ap.parse_args()
    budget = parse_size(a.size)
    roots = [r for r in a.roots if os.path.isdir(r)]
    if not roots:
        sys.exit(f"real_image.py: none of {a.roots} is a directory")
    files = listing(roots)
    # Files in the order of a hash of their path, kept while they fit in the budget: a
    # sample with the tree's mix of binaries, libraries and text, the same on every run.
    # Files over a half layer's share are left out, so that layers stay about even.
    biggest = budget // a.layers // 2
    sample, sampled = [], 0
    for p, st in sorted(files, key=lambda e: hashlib.sha256(e[0].encode()).digest()):
        size = st.st_size if stat.S_ISREG(st.st_mode) else 0
        if size <= biggest and sampled + size <= budget:
            sample.append((p, st))
            sampled += size
    sample.sort(key=lambda e: e[0])
    os.makedirs(a.out, exist_ok=True)
    digest = hashlib.sha256()
    done, n, layer = 0, 0, 0
    tar = None
    for p, st in sample:
        # Start layer k+1 once the bytes so far pass k/layers of the sample.
        if tar is None or (layer < a.layers and done >= sampled * layer / a.layers):
            if tar is not None:
                tar.close()
            layer += 1
            tar = tarfile.open(os.path.join(a.out, f"layer-{layer}.tar"), "w", format=tarfile.GNU_FORMAT)
        done += add(tar, p, st)
        n += 1
    if tar is not None:
        tar.close()
    for k in range(1, layer + 1):
        with open(os.path.join(a.out, f"layer-{k}.tar"), "rb") as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    print(f"{n} files, {done} bytes of content in {layer} layers from {' '.join(roots)}; sha256 of the tars {digest.hexdigest()[:16]}")


if __name__ == "__main__":
    main()
