#!/usr/bin/env python3
"""The level-1 compressor alone on text, incompressible and real data, against variants.

    python3 bench/level1/run.py [--rounds 7] [--reps 5] [--dir /var/tmp/hoist-level1] [VARIANT.c ...]

Builds bench/level1/harness.c with the vendored deflate_compress.c ("current") and with
each VARIANT.c (a modified copy of crates/image/libdeflate/lib/deflate_compress.c), gcc
-O2 as crates/image/build.rs. Makes the data once in --dir: 50 MiB of `hoist random
--mode text`, 50 MiB of `--mode random` (seed 1, uncompressed layer tars) and a 100 MiB
tar of /usr (bench/real_image.py). Then, --rounds times, runs every build on every data
(--reps passes each, keeping the least CPU time), interleaved so that the load of the
machine falls on all alike, and prints per data and build: the output bytes, the
min / median / max over the rounds, and the change against the first build. The first
round also checks that zlib inflates each output back to its input. Delete --dir when
done (about 210 MB).
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LIB = os.path.join(ROOT, "crates/image/libdeflate")


def hoist():
    exe = os.path.join(ROOT, "target/release/hoist")
    if not os.path.exists(exe):
        subprocess.run(["cargo", "build", "--release", "-p", "hoist"], cwd=ROOT, check=True)
    return exe


def layer_tar(d, mode):
    """An uncompressed 50 MiB layer tar of `hoist random --mode MODE` (seed 1)."""
    out = os.path.join(d, mode + ".tar")
    if not os.path.exists(out):
        lay = os.path.join(d, mode + ".oci")
        subprocess.run([hoist(), "-q", "random", "--mode", mode, "--size", "50M", "--seed", "1",
                        "--compression", "none", "oci:" + lay], check=True,
                       stdout=subprocess.DEVNULL)
        blobs = os.path.join(lay, "blobs/sha256")
        biggest = max(os.listdir(blobs), key=lambda b: os.path.getsize(os.path.join(blobs, b)))
        shutil.move(os.path.join(blobs, biggest), out)
        shutil.rmtree(lay)
    return out


def real_tar(d):
    out = os.path.join(d, "real.tar")
    if not os.path.exists(out):
        tmp = os.path.join(d, "real")
        subprocess.run([sys.executable, os.path.join(ROOT, "bench/real_image.py"), tmp,
                        "--size", "100MiB", "--layers", "1"], check=True)
        shutil.move(os.path.join(tmp, "layer-1.tar"), out)
        shutil.rmtree(tmp)
    return out


def build(d, name, src):
    exe = os.path.join(d, "bin", name)
    os.makedirs(os.path.dirname(exe), exist_ok=True)
    subprocess.run(["gcc", "-O2", "-I" + LIB, "-I" + os.path.join(LIB, "lib"), "-o", exe,
                    os.path.join(ROOT, "bench/level1/harness.c"), src,
                    os.path.join(LIB, "lib/utils.c"), "-lz"], check=True)
    return exe


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--dir", default="/var/tmp/hoist-level1")
    ap.add_argument("variants", nargs="*")
    a = ap.parse_args()
    os.makedirs(a.dir, exist_ok=True)
    data = {"text": layer_tar(a.dir, "text"), "random": layer_tar(a.dir, "random"),
            "real": real_tar(a.dir)}
    builds = {"current": build(a.dir, "current", os.path.join(LIB, "lib/deflate_compress.c"))}
    for v in a.variants:
        builds[os.path.splitext(os.path.basename(v))[0]] = build(
            a.dir, os.path.splitext(os.path.basename(v))[0], v)
    times, size = {}, {}
    for r in range(a.rounds):
        for kind, path in data.items():
            for name, exe in builds.items():
                cmd = [exe, path, str(a.reps)] + (["verify"] if r == 0 else [])
                out = subprocess.run(cmd, capture_output=True, text=True)
                if out.returncode != 0:
                    sys.exit(f"{name} on {kind}: {out.stdout.strip()} {out.stderr.strip()}")
                f = out.stdout.split()
                size[kind, name] = int(f[1])
                times.setdefault((kind, name), []).append(float(f[3]))
    first = next(iter(builds))
    print(f"| data | build | bytes | CPU s min / median / max of {a.rounds} | vs {first} (min, median) |")
    print("|---|---|---|---|---|")
    for kind in data:
        b0 = times[kind, first]
        for name in builds:
            t = times[kind, name]
            print(f"| {kind} | {name} | {size[kind, name]:,} ({size[kind, name] / size[kind, first] - 1:+.2%}) "
                  f"| {min(t):.4f} / {statistics.median(t):.4f} / {max(t):.4f} "
                  f"| {min(t) / min(b0) - 1:+.1%}, {statistics.median(t) / statistics.median(b0) - 1:+.1%} |")


if __name__ == "__main__":
    main()
