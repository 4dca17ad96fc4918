#!/usr/bin/env python3
"""Ingest benchmark (not a test): run with `python3 scripts/bench.py` after `cargo build --release`.

(a) one case holding a single 1 GiB file (a WAV recording) POSTed over HTTP, against
    `openssl dgst -sm3` and `openssl dgst -sha256` of the same bytes, measured in the same run;
(b) 1,000 small cases (5 files of ~50 KB) POSTed by 8 concurrent clients, on SQLite.
Prints MB/s, cases/s, the ratios and the server's peak memory (VmHWM). Options: --size-mib N,
--cases N, --clients N.
"""
import argparse, http.client, io, json, os, shutil, socket, subprocess, sys, tempfile, threading, time, zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GUIDANG_BIN") or os.path.join(ROOT, "target", "release", "guidang")
META = open(os.path.join(ROOT, "fixtures", "valid", "food-licence", "metadata.xml"), encoding="utf-8").read()

def metadata(project_id, files):
    head, rest = META.split("<files>", 1)
    tail = rest.split("</files>", 1)[1]
    tail = tail.split("<licenses>", 1)[0] + "</case>\n" if "<licenses>" in tail else tail
    block = "".join("<file><path>%s</path><name>%s</name><stage>3</stage><format>%s</format></file>" % (p, p, f) for p, f in files)
    head = head.replace("370102-SPJY-20250303-0001", project_id)
    return (head + "<files>" + block + "</files>" + tail).encode()

def openssl_rate(alg, path, size):
    best = None
    for _ in range(2):
        t = time.perf_counter()
        subprocess.run(["openssl", "dgst", "-" + alg, path], check=True, stdout=subprocess.DEVNULL)
        d = time.perf_counter() - t
        best = d if best is None else min(best, d)
    return size / best / 1e6

def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")

def vm_hwm(pid):
    for line in open("/proc/%d/status" % pid):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--cases", type=int, default=1000)
    ap.add_argument("--clients", type=int, default=8)
    a = ap.parse_args()
    if not os.path.exists(BIN):
        sys.exit("build first: cargo build --release")
    work = tempfile.mkdtemp(prefix="guidang-bench-")
    env = dict(os.environ, GUIDANG_DATA_DIR=os.path.join(work, "data"), GUIDANG_LISTEN="127.0.0.1:18391",
               GUIDANG_MAX_BODY_BYTES=str(8 << 30), GUIDANG_LOG="warn")
    env.pop("DATABASE_URL", None)
    subprocess.run([BIN, "init"], env=env, check=True, stderr=subprocess.DEVNULL)
    token = subprocess.run([BIN, "token", "create", "--role", "archivist"], env=env, check=True,
                           capture_output=True, text=True).stdout.strip()
    server = subprocess.Popen([BIN, "serve"], env=env, stderr=open(os.path.join(work, "server.log"), "w"))
    try:
        for _ in range(100):
            try:
                c = http.client.HTTPConnection("127.0.0.1", 18391, timeout=2); c.request("GET", "/healthz")
                if c.getresponse().status == 200: break
            except OSError:
                time.sleep(0.1)
        base_mem = vm_hwm(server.pid)

        # (a) one large file
        size = a.size_mib << 20
        wav_path = os.path.join(work, "recording.wav")
        block = os.urandom(16 << 20)
        with open(wav_path, "wb") as f:
            data_len = size - 44
            f.write(b"RIFF" + (data_len + 36).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
                    + (1).to_bytes(2, "little") + (2).to_bytes(2, "little") + (48000).to_bytes(4, "little")
                    + (192000).to_bytes(4, "little") + (4).to_bytes(2, "little") + (16).to_bytes(2, "little")
                    + b"data" + data_len.to_bytes(4, "little"))
            left, i = data_len, 0
            while left > 0:
                n = min(left, len(block))
                f.write(bytes([i & 0xFF]) + block[1:n]); left -= n; i += 1
        zip_path = os.path.join(work, "large.zip")
        with zipfile.ZipFile(zip_path, "w", zipfile.ZIP_STORED, allowZip64=True) as z:
            z.writestr("metadata.xml", metadata("BENCH-LARGE-1", [("files/recording.wav", "wav")]))
            z.write(wav_path, "files/recording.wav")
        os.sync()  # no write-back of the generated files competing with the measurement
        subprocess.run(["cat", zip_path, wav_path], stdout=subprocess.DEVNULL)  # warm the page cache
        sm3 = openssl_rate("sm3", wav_path, size)
        sha = openssl_rate("sha256", wav_path, size)
        zsize = os.path.getsize(zip_path)
        # curl streams the file with little CPU of its own: the two cores are left to the server.
        t = time.perf_counter()
        out = subprocess.run(["curl", "-sS", "-o", os.path.join(work, "large.json"), "-w", "%{http_code}", "-X", "POST",
                              "-H", "Authorization: Bearer " + token, "-H", "Content-Type: application/zip",
                              "-T", zip_path, "http://127.0.0.1:18391/api/v1/cases"], capture_output=True, text=True)
        large_s = time.perf_counter() - t
        assert out.stdout == "201", (out.stdout, out.stderr, open(os.path.join(work, "large.json")).read()[:500])
        large_mem = vm_hwm(server.pid)
        large_rate = size / large_s / 1e6
        os.remove(wav_path); os.remove(zip_path)

        # (b) many small cases
        payload = [("files/%02d-材料.txt" % i, "txt") for i in range(5)]
        bodies = []
        for n in range(a.cases):
            buf = io.BytesIO()
            with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
                z.writestr("metadata.xml", metadata("BENCH-SMALL-%06d" % n, payload))
                for i, (p, _) in enumerate(payload):
                    z.writestr(p, os.urandom(25_000).hex()[: 50_000 - i].encode())
            bodies.append(buf.getvalue())
        # Requests are pre-built bytes on raw keep-alive sockets, so the client spends little CPU.
        reqs = [("POST /api/v1/cases HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer %s\r\n"
                 "Content-Type: application/zip\r\nContent-Length: %d\r\n\r\n" % (token, len(b))).encode() + b for b in bodies]
        os.sync()
        lock = threading.Lock(); nxt = [0]; bad = []
        def worker():
            s = socket.create_connection(("127.0.0.1", 18391))
            f = s.makefile("rb")
            while True:
                with lock:
                    if nxt[0] >= len(reqs): break
                    r = reqs[nxt[0]]; nxt[0] += 1
                s.sendall(r)
                status = f.readline().split()[1]
                length = 0
                while True:
                    line = f.readline()
                    if line in (b"\r\n", b""): break
                    if line.lower().startswith(b"content-length:"): length = int(line.split(b":")[1])
                f.read(length)
                if status != b"201": bad.append(status)
            s.close()
        cpu0 = cpu_seconds(server.pid); own0 = time.process_time()
        t = time.perf_counter()
        ts = [threading.Thread(target=worker) for _ in range(a.clients)]
        [x.start() for x in ts]; [x.join() for x in ts]
        small_s = time.perf_counter() - t
        small_cpu = cpu_seconds(server.pid) - cpu0
        client_cpu = time.process_time() - own0
        assert not bad, bad[:5]
        result = {
            "large_file_bytes": size,
            "large_ingest_seconds": round(large_s, 3),
            "large_ingest_MBps": round(large_rate, 1),
            "openssl_sm3_MBps": round(sm3, 1),
            "openssl_sha256_MBps": round(sha, 1),
            "ratio_to_slower_openssl": round(large_rate / min(sm3, sha), 3),
            "server_peak_rss_MiB_before": round(base_mem, 1),
            "server_peak_rss_MiB_after_large": round(large_mem, 1),
            "small_cases": a.cases,
            "small_cases_seconds": round(small_s, 2),
            "small_cases_per_second": round(a.cases / small_s, 1),
            "clients": a.clients,
            "small_cases_server_cpu_seconds": round(small_cpu, 2),
            "small_cases_client_cpu_seconds": round(client_cpu, 2),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result, indent=2))
    finally:
        server.terminate(); server.wait()
        shutil.rmtree(work, ignore_errors=True)

if __name__ == "__main__":
    main()
