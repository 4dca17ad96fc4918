#!/usr/bin/env python3
"""Digitised-copy QC benchmark: N pages of 300 dpi A4 colour JPEG added to one case with
`guidang digitised add`, timed and its peak memory measured, against `openssl dgst -sm3` over the
same bytes in the same run (the bytes read once is the floor: QC, both digests and the package
copy ride on that one read).

    cargo build --release
    python3 scripts/bench_digitised.py --pages 1000          # and --pages 100 to see memory flat

Pages are real JPEGs drawn by Pillow (a few distinct pages, each copy made unique by a JPEG
comment segment, so no two pages share a digest and none is refused as a duplicate).
"""

import argparse
import io
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

from PIL import Image, ImageDraw

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "guidang")


def page(seed):
    w, h = 2480, 3508  # A4 at 300 dpi
    im = Image.new("RGB", (w, h), "white")
    d = ImageDraw.Draw(im)
    for i, y in enumerate(range(300, h - 300, 60)):
        x = 250
        while x < w - 250:
            n = (i * 7 + x + seed) % 5 + 2
            d.rectangle([x, y, x + n * 20, y + 14], fill=(20, 20, 20))
            x += n * 20 + 30
    d.ellipse([w - 800, h - 900, w - 300, h - 400], outline=(210, 20, 20), width=30)
    b = io.BytesIO()
    im.save(b, "JPEG", quality=85, dpi=(300, 300))
    return b.getvalue()


def unique(jpeg, n):
    # A COM segment right after SOI: a valid JPEG with its own bytes.
    text = f"page {n}".encode()
    seg = b"\xff\xfe" + (len(text) + 2).to_bytes(2, "big") + text
    return jpeg[:2] + seg + jpeg[2:]


def run(cmd, env, **kw):
    return subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, **kw)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pages", type=int, default=1000)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="bench-digitised-")
    data = os.path.join(work, "data")
    scans = os.path.join(work, "scans")
    os.makedirs(os.path.join(scans, "images"))
    bases = [page(s) for s in range(8)]
    total = 0
    images = []
    for n in range(1, a.pages + 1):
        b = unique(bases[n % len(bases)], n)
        name = f"images/p-{n:05}.jpg"
        with open(os.path.join(scans, name), "wb") as f:
            f.write(b)
        total += len(b)
        images.append(
            f"<image><path>{name}</path><original>o</original><page>{n}</page><resolution>300</resolution>"
            f"<colour_mode>color</colour_mode><format>jpeg</format></image>"
        )
    with open(os.path.join(scans, "digitisation.xml"), "w") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<digitisation xmlns="urn:guidang:digitisation:1">'
                "<scanner>bench</scanner><operator>bench</operator><date>2026-12-01</date>"
                f"<originals><original><id>o</id><title>bench</title><pages>{a.pages}</pages><paper>A4</paper></original></originals>"
                f"<images>{''.join(images)}</images></digitisation>\n")
    env = dict(os.environ, GUIDANG_DATA_DIR=data)
    env.pop("DATABASE_URL", None)
    env.pop("GUIDANG_FAILPOINT", None)
    run([BIN, "init"], env, cwd=work)
    out = run([BIN, "import", os.path.join(ROOT, "fixtures/valid/food-licence.zip")], env, cwd=work).stdout
    archive_id = re.search(r"-> (\S+)", out).group(1)

    # Reference: the same bytes read once by openssl's SM3 (page cache warm for both).
    files = [os.path.join(scans, "images", f) for f in sorted(os.listdir(os.path.join(scans, "images")))]
    subprocess.run(["cat"] + files, stdout=subprocess.DEVNULL, check=True)
    t = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sm3"] + files, stdout=subprocess.DEVNULL, check=True)
    ref = time.perf_counter() - t

    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", BIN, "digitised", "add", archive_id, scans],
                       env=env, cwd=work, capture_output=True, text=True)
    took = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"digitised add failed:\n{r.stdout}\n{r.stderr}")
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    mib = total / 2**20
    print(f"pages {a.pages}, {mib:.0f} MiB of 300 dpi A4 colour JPEG")
    print(f"guidang digitised add (QC, SHA-256+SM3, package, sign, store, record): {took:.2f} s, "
          f"{mib / took:.0f} MiB/s, peak RSS {rss / 1024:.1f} MiB")
    print(f"openssl dgst -sm3 over the same bytes: {ref:.2f} s ({mib / ref:.0f} MiB/s)")
    print(f"ratio guidang/openssl-sm3: {took / ref:.2f}x")
    if not a.keep:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
