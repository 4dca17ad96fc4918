#!/usr/bin/env python3
"""Transfer benchmark (not a test): `python3 scripts/bench_transfer.py` after `cargo build --release`.

The unit (a release server on SQLite) archives --cases small cases (5 files of ~50 KB) and one case
holding a --big-mib MiB file, files the year, drafts a batch, decides it by rule and has it
approved; then it BUILDS the volumes (timed from POST …/build to state `built`) and exports them.
The archive authority (another data directory) RECEIVES them with `guidang transfer receive`
(timed, peak RSS by /usr/bin/time). References measured in the same run on the same bytes:
reading every stored package once (`cat` > /dev/null, with the page cache dropped where allowed,
and cached) and `openssl dgst -sm3` over them for the build,
`openssl dgst -sm3` over the volumes for receiving (the receiver re-hashes everything). Prints the
rates, the ratios and both sides' peak memory.
"""
import argparse, http.client, io, json, os, re, shutil, subprocess, sys, tempfile, time, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GUIDANG_BIN") or os.path.join(ROOT, "target", "release", "guidang")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
from bench import metadata, vm_hwm  # noqa: E402

PORT = 18397


def call(method, path, token, body=None):
    c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=600)
    headers = {"Authorization": "Bearer " + token}
    if isinstance(body, (dict, list)):
        body = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    elif body is not None:
        headers["Content-Type"] = "application/zip"
    c.request(method, path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    return r.status, (json.loads(data) if data[:1] in (b"{", b"[") else data)


def case_zip(i, files):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("metadata.xml", metadata("BENCH-T-%06d" % i, [(p, "txt") for p, _ in files]))
        for p, data in files:
            z.writestr(p, data)
    return buf.getvalue()


def drop_caches():
    """Empties the page cache (root only); True if it did."""
    try:
        subprocess.run(["sync"], check=True)
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--big-mib", type=int, default=1024)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="guidang-bench-transfer-")
    unit = os.path.join(work, "unit")
    env = dict(os.environ, GUIDANG_DATA_DIR=unit, GUIDANG_LISTEN="127.0.0.1:%d" % PORT,
               GUIDANG_MAX_BODY_BYTES=str(8 << 30), GUIDANG_LOG="warn")
    env.pop("DATABASE_URL", None)
    run = lambda args, e=env: subprocess.run([BIN] + args, env=e, check=True, capture_output=True, text=True).stdout.strip()
    run(["init"])
    archivist = run(["token", "create", "--role", "archivist", "--name", "档案室"])
    admin = run(["token", "create", "--role", "admin", "--name", "分管领导"])
    server = subprocess.Popen([BIN, "serve"], env=env, stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2); c.request("GET", "/healthz")
                if c.getresponse().status == 200: break
            except OSError:
                time.sleep(0.1)
        print("archiving %d small cases and one of %d MiB …" % (a.cases, a.big_mib), flush=True)
        small = [os.urandom(25_000).hex()[: 50_000 - k].encode() for k in range(5)]
        for i in range(a.cases):
            files = [("files/%02d.txt" % k, b"%06d " % i + small[k]) for k in range(5)]
            s, b = call("POST", "/api/v1/cases", archivist, case_zip(i, files))
            assert s == 201, b
        # The large case is written to disk as it is made and sent by curl: never whole in memory.
        big_zip = os.path.join(work, "big.zip")
        with zipfile.ZipFile(big_zip, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            z.writestr("metadata.xml", metadata("BENCH-T-BIG", [("files/big.txt", "txt")]))
            with z.open("files/big.txt", "w", force_zip64=True) as f:
                chunk = os.urandom(1 << 19).hex().encode()
                for _ in range(a.big_mib):
                    f.write(chunk)
        r = subprocess.run(["curl", "-s", "-X", "POST", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer " + archivist,
                            "-H", "Content-Type: application/zip", "-T", big_zip,
                            "http://127.0.0.1:%d/api/v1/cases" % PORT], capture_output=True, text=True)
        assert r.stdout == "201", r.stdout
        os.remove(big_zip)
        s, b = call("POST", "/api/v1/filings", archivist, {"year": 2025})
        assert s in (201, 202), b
        for _ in range(600):
            s, st = call("GET", "/api/v1/filings/2025", archivist)
            if st["counts"]["pending"] == 0: break
            time.sleep(0.5)
        s, batch = call("POST", "/api/v1/transfers", archivist, {"year": 2025})
        assert s == 201, batch
        tid = batch["transfer_id"]
        rules = {"rules": [{"classification": {"action": "keep"},
                            "access": {"opinion": "restricted", "reason": "personal_information", "until": 2055}}]}
        s, b = call("PUT", "/api/v1/transfers/%s/decisions" % tid, archivist, rules); assert s == 200, b
        s, b = call("POST", "/api/v1/transfers/%s/approve" % tid, admin, {}); assert s == 200, b

        # A fresh server for the build: its peak memory is the build's, not the archiving's.
        server.terminate(); server.wait()
        server = subprocess.Popen([BIN, "serve"], env=env, stderr=open(os.path.join(work, "server2.log"), "w"))
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", PORT, timeout=2); c.request("GET", "/healthz")
                if c.getresponse().status == 200: break
            except OSError:
                time.sleep(0.1)
        packages = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(unit, "objects", "packages")) for f in fs]
        pkg_bytes = sum(os.path.getsize(p) for p in packages)
        print("building (%s) …" % time.strftime("%H:%M:%S"), flush=True)
        mem_before = vm_hwm(server.pid)
        cold = drop_caches()
        t = time.perf_counter()
        s, b = call("POST", "/api/v1/transfers/%s/build" % tid, archivist, {"volume_size": "25G"}); assert s == 202, b
        while True:
            s, v = call("GET", "/api/v1/transfers/%s" % tid, archivist)
            if v["state"] == "built": break
            time.sleep(0.05)
        build = time.perf_counter() - t
        mem_build = vm_hwm(server.pid)
        drop_caches()
        t = time.perf_counter()
        # Through xargs: tens of thousands of paths do not fit one command line.
        listing = b"\0".join(p.encode() for p in packages)
        xargs = lambda cmd: subprocess.run(["xargs", "-0"] + cmd, input=listing, stdout=subprocess.DEVNULL, check=True)
        xargs(["cat"])
        read_cold = time.perf_counter() - t
        t = time.perf_counter()
        xargs(["cat"])
        read_once = time.perf_counter() - t
        t = time.perf_counter()
        xargs(["openssl", "dgst", "-sm3"])
        sm3_packages = time.perf_counter() - t
        media = os.path.join(work, "media")
        run(["transfer", "export", tid, "--out", media])
        keys = os.path.join(work, "unit-keys.json")
        with open(keys, "w") as f:
            f.write(run(["keys", "export"]))
    finally:
        server.terminate(); server.wait()

    # The archive authority receives.
    auth = dict(env, GUIDANG_DATA_DIR=os.path.join(work, "authority"))
    run(["init"], auth)
    vols = sorted(os.path.join(media, f) for f in os.listdir(media) if f.endswith(".zip"))
    vol_bytes = sum(os.path.getsize(p) for p in vols)
    print("receiving (%s) …" % time.strftime("%H:%M:%S"), flush=True)
    t = time.perf_counter()
    r = subprocess.run(["/usr/bin/time", "-v", BIN, "transfer", "receive", media, "--trusted-keys", keys,
                        "--out", os.path.join(work, "receipt")], env=auth, capture_output=True, text=True)
    receive = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit("receive failed:\n" + r.stdout + r.stderr)
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) / 1024
    t = time.perf_counter()
    subprocess.run(["openssl", "dgst", "-sm3"] + vols, stdout=subprocess.DEVNULL, check=True)
    sm3 = time.perf_counter() - t
    mib = lambda n: n / 2 ** 20
    print("batch: %d cases, %.0f MiB of packages, %d volume(s) of %.0f MiB" % (a.cases + 1, mib(pkg_bytes), len(vols), mib(vol_bytes)))
    print("build:   %.2f s, %.0f MiB/s (%s)" % (build, mib(pkg_bytes) / build, "page cache dropped first" if cold else "page cache NOT dropped: not allowed here"))
    print("         reading the packages once: %.2f s cold (%.0f MiB/s), %.2f s cached (%.0f MiB/s); openssl dgst -sm3: %.2f s (%.0f MiB/s)"
          % (read_cold, mib(pkg_bytes) / read_cold, read_once, mib(pkg_bytes) / read_once, sm3_packages, mib(pkg_bytes) / sm3_packages))
    print("         ratio build/read-once: %.2f (cold), %.2f (cached); build/SM3: %.2f"
          % (read_cold / build, read_once / build, sm3_packages / build))
    print("         unit server peak RSS %.1f MiB (%.1f MiB before the build)" % (mem_build, mem_before))
    print("receive: %.2f s, %.0f MiB/s; openssl dgst -sm3 over the volumes: %.2f s (%.0f MiB/s); ratio %.2f"
          % (receive, mib(vol_bytes) / receive, sm3, mib(vol_bytes) / sm3, sm3 / receive))
    print("         receiver peak RSS %.1f MiB" % rss)
    if os.environ.get("GUIDANG_BENCH_KEEP"):
        print("kept:", work)
    else:
        shutil.rmtree(work)


if __name__ == "__main__":
    main()
