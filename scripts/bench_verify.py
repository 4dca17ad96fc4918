#!/usr/bin/env python3
"""Verification benchmark (not a test): `guidang verify` against bagit-python's `bagit.py --validate`
on the same packages — one with 10,000 small files, one with a single 1 GiB file — and
`openssl dgst` of the same 1 GiB, measured in the same run. Run after `cargo build --release`.
Options: --files N, --size-mib N.
"""
import argparse, json, os, shutil, subprocess, sys, tempfile, time, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GUIDANG_BIN") or os.path.join(ROOT, "target", "release", "guidang")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench import metadata  # noqa: E402

def timed(cmd, **kw):
    """Wall time and peak RSS (KiB, from GNU time) of one command."""
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-f", "%M"] + cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **kw)
    wall = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("%s failed: %s" % (cmd[0], r.stderr.decode()[-500:]))
    return wall, int(r.stderr.decode().strip().splitlines()[-1])

def package_of(work, env, src):
    subprocess.run([BIN, "import", src], env=env, check=True, stdout=subprocess.DEVNULL)
    pkgs = []
    for d, _, fs in os.walk(os.path.join(env["GUIDANG_DATA_DIR"], "objects", "packages")):
        pkgs += [os.path.join(d, f) for f in fs]
    pkg = max(pkgs, key=os.path.getmtime)
    out = os.path.join(work, "unpacked-" + os.path.basename(os.path.dirname(pkg)))
    with zipfile.ZipFile(pkg) as z:
        z.extractall(out)
    bag = os.path.join(out, os.listdir(out)[0])
    return pkg, bag

def best_of(n, cmd):
    times = [timed(cmd) for _ in range(n)]
    return min(t for t, _ in times), max(m for _, m in times)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=10_000)
    ap.add_argument("--size-mib", type=int, default=1024)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="guidang-verify-bench-")
    env = dict(os.environ, GUIDANG_DATA_DIR=os.path.join(work, "data"), GUIDANG_MAX_ENTRIES=str(a.files + 10))
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN, "init"], env=env, check=True, stderr=subprocess.DEVNULL)
    try:
        # Many small files: an unpacked submission folder, imported offline.
        src = os.path.join(work, "many")
        os.makedirs(os.path.join(src, "files"))
        files = [("files/%05d.txt" % i, "txt") for i in range(a.files)]
        for i, (p, _) in enumerate(files):
            with open(os.path.join(src, p), "w") as f:
                f.write(("第 %d 份材料\n" % i) * 40)
        with open(os.path.join(src, "metadata.xml"), "wb") as f:
            f.write(metadata("BENCH-VERIFY-MANY", files))
        pkg_many, bag_many = package_of(work, env, src)
        shutil.rmtree(src)
        g_many, g_many_rss = best_of(2, [BIN, "verify", pkg_many])
        b_many, b_many_rss = best_of(1, [sys.executable, "-m", "bagit", "--validate", bag_many])

        # One large file.
        size = a.size_mib << 20
        src = os.path.join(work, "large")
        os.makedirs(os.path.join(src, "files"))
        wav = os.path.join(src, "files", "recording.wav")
        block = os.urandom(16 << 20)
        with open(wav, "wb") as f:
            dl = size - 44
            f.write(b"RIFF" + (dl + 36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little") + (1).to_bytes(2, "little")
                    + (2).to_bytes(2, "little") + (48000).to_bytes(4, "little") + (192000).to_bytes(4, "little")
                    + (4).to_bytes(2, "little") + (16).to_bytes(2, "little") + b"data" + dl.to_bytes(4, "little"))
            left, i = dl, 0
            while left > 0:
                n = min(left, len(block)); f.write(bytes([i & 255]) + block[1:n]); left -= n; i += 1
        with open(os.path.join(src, "metadata.xml"), "wb") as f:
            f.write(metadata("BENCH-VERIFY-LARGE", [("files/recording.wav", "wav")]))
        pkg_large, bag_large = package_of(work, env, src)
        shutil.rmtree(src)
        os.sync()
        payload = os.path.join(bag_large, "data", "submission", "files", "recording.wav")
        subprocess.run(["cat", pkg_large, payload], stdout=subprocess.DEVNULL)
        g_large, g_large_rss = best_of(2, [BIN, "verify", pkg_large])
        b_large, b_large_rss = best_of(1, [sys.executable, "-m", "bagit", "--validate", bag_large])
        sm3, _ = best_of(2, ["openssl", "dgst", "-sm3", payload])
        sha, _ = best_of(2, ["openssl", "dgst", "-sha256", payload])
        print(json.dumps({
            "many_files": a.files,
            "guidang_verify_many_s": round(g_many, 2),
            "bagit_python_many_s": round(b_many, 2),
            "many_speedup_vs_bagit": round(b_many / g_many, 1),
            "guidang_verify_many_peak_rss_mib": round(g_many_rss / 1024, 1),
            "large_bytes": size,
            "guidang_verify_large_s": round(g_large, 2),
            "guidang_verify_large_MBps": round(size / g_large / 1e6, 1),
            "bagit_python_large_s": round(b_large, 2),
            "openssl_sm3_MBps": round(size / sm3 / 1e6, 1),
            "openssl_sha256_MBps": round(size / sha / 1e6, 1),
            "large_ratio_to_slower_openssl": round((size / g_large) / (size / max(sm3, sha)), 3),
            "guidang_verify_peak_rss_mib_max": round(max(g_many_rss, g_large_rss) / 1024, 1),
        }, indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
