#!/usr/bin/env python3
"""Resident memory of the release server under a long run of mutated submissions (issue 9,
item 19): warm up, note VmRSS, keep going, note it again. Exits 1 if the end is above twice the
warm-up. Run after `cargo build --release`:

    python3 scripts/fuzz_memory.py [--warmup 2000] [--cases 30000] [--clients 8] [--seed 1]

GUIDANG_BIN picks another build (to compare two in one session)."""
import argparse, http.client, io, os, random, subprocess, sys, tempfile, threading, time, zipfile

BIN = os.environ.get("GUIDANG_BIN", os.path.join(os.path.dirname(__file__), "..", "target", "release", "guidang"))
ROOT = os.path.join(os.path.dirname(__file__), "..")
MAGIC = [b"PK\x03\x04", b"PK\x01\x02", b"PK\x05\x06", b"%PDF", b"<?xml", b"]]>", b"\xff" * 4, b"\x00" * 4]


def seeds():
    out = []
    for p in ["fixtures/valid/food-licence.zip", "fixtures/valid/with-docx.zip"]:
        with open(os.path.join(ROOT, p), "rb") as f:
            out.append(f.read())
    # The valid case with its metadata mutated, re-zipped properly (reaches the XML parser).
    with zipfile.ZipFile(os.path.join(ROOT, "fixtures/valid/food-licence.zip")) as z:
        entries = [(i.filename, z.read(i.filename)) for i in z.infolist()]
    out.append(entries)
    return out


def mutate(rng, b):
    b = bytearray(b)
    for _ in range(rng.randint(1, 4)):
        at = rng.randrange(max(len(b), 1))
        k = rng.randrange(6)
        if k == 0 and b:
            b[at] ^= 1 << rng.randrange(8)
        elif k == 1:
            b[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif k == 2:
            del b[at:at + rng.randint(1, 64)]
        elif k == 3 and b:
            end = min(len(b), at + rng.randint(1, 256))
            to = rng.randrange(len(b) + 1)
            b[to:to] = b[at:end]
        elif k == 4:
            b[at:at + 4] = rng.choice(MAGIC)
        else:
            b[at:at + 4] = rng.choice([0, 1, 0x7fffffff, 0xffffffff]).to_bytes(4, "little")
    return bytes(b)


def submission(rng, pool, i):
    s = rng.choice(pool)
    if isinstance(s, list):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
            for name, data in s:
                if name == "metadata.xml":
                    data = mutate(rng, data.replace(b"370102-SPJY-20250303-0001", b"MEM-%d" % i))
                z.writestr(name, data)
        return buf.getvalue()
    return mutate(rng, s)


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--warmup", type=int, default=2000)
    ap.add_argument("--cases", type=int, default=30000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="guidang-mem-")
    env = dict(os.environ, GUIDANG_DATA_DIR=os.path.join(work, "data"), GUIDANG_LISTEN="127.0.0.1:18393", GUIDANG_LOG="warn")
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN, "init"], env=env, check=True, stderr=subprocess.DEVNULL)
    token = subprocess.run([BIN, "token", "create", "--role", "archivist"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([BIN, "serve"], env=env, stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", 18393, timeout=2); c.request("GET", "/healthz"); c.getresponse().read(); break
            except OSError:
                time.sleep(0.1)
        pool = seeds()
        statuses = {}
        lock = threading.Lock()
        counter = [0]

        def worker(n, seed):
            rng = random.Random(seed)
            c = http.client.HTTPConnection("127.0.0.1", 18393, timeout=60)
            for _ in range(n):
                with lock:
                    counter[0] += 1
                    i = counter[0]
                body = submission(rng, pool, i)
                try:
                    c.request("POST", "/api/v1/cases", body, {"Authorization": "Bearer " + token, "Content-Type": "application/zip"})
                    r = c.getresponse(); r.read()
                    code = r.status
                except (OSError, http.client.HTTPException):
                    c.close(); c = http.client.HTTPConnection("127.0.0.1", 18393, timeout=60); code = "conn"
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                if isinstance(code, int) and code >= 500:
                    # Kept as a regression input: tests/it/fuzz.rs replays every file there.
                    import hashlib
                    keep = os.path.join(ROOT, "fixtures", "fuzz", "submission-http-%s.bin" % hashlib.sha256(body).hexdigest()[:16])
                    with open(keep, "wb") as f:
                        f.write(body)

        def phase(total, seed):
            per = total // a.clients
            ts = [threading.Thread(target=worker, args=(per, seed * 1000 + k)) for k in range(a.clients)]
            [t.start() for t in ts]; [t.join() for t in ts]

        start = rss_kib(server.pid)
        t0 = time.time()
        phase(a.warmup, a.seed)
        warm = rss_kib(server.pid)
        phase(a.cases, a.seed + 1)
        time.sleep(2)
        end = rss_kib(server.pid)
        print("submissions: %d warm-up + %d in %.0f s; statuses %s" % (a.warmup, a.cases, time.time() - t0, dict(sorted(statuses.items(), key=str))))
        print("VmRSS: start %d KiB, after warm-up %d KiB, at the end %d KiB: %.2fx the warm-up" % (start, warm, end, end / warm))
        if any(isinstance(k, int) and k >= 500 for k in statuses):
            print("5xx answers: see %s/server.log" % work); sys.exit(1)
        sys.exit(0 if end <= 2 * warm else 1)
    finally:
        server.terminate(); server.wait()


if __name__ == "__main__":
    main()
