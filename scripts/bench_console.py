#!/usr/bin/env python3
"""Console and case-list render times at a million cases (issue 12's aim: < 100 ms server time
for the first page of the case list and for a search by archival code).

`python3 scripts/bench_console.py [N]` after `cargo build --release`: a new archive (SQLite, the
embedded default) archives one real case, then N-1 copies of its row with their own ids, project
ids, archival codes and times are written straight into the database (archiving a million cases
through the pipeline would take hours and is measured by scripts/bench.py); the server then
serves them. Each page is fetched 20 times after a warm-up; the server's own time is the `ms` of
its request log line, the client's is measured around the request. With GUIDANG_BENCH_PG=1 the
same runs on PostgreSQL (127.0.0.1:5432).
"""
import json, os, re, sqlite3, statistics, subprocess, sys, tempfile, time, urllib.parse, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GUIDANG_BIN") or os.path.join(ROOT, "target", "release", "guidang")
PORT = 18472
N = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
PG = os.environ.get("GUIDANG_BENCH_PG") == "1"


def main():
    work = tempfile.mkdtemp(prefix="guidang-bench-console-")
    env = dict(os.environ, GUIDANG_DATA_DIR=work, GUIDANG_LISTEN="127.0.0.1:%d" % PORT,
               GUIDANG_LOG="info", GUIDANG_FIXITY_BYTES_PER_HOUR="0")
    if PG:
        db = "guidang_bench_console"
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "DROP DATABASE IF EXISTS %s" % db], check=True)
        subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-qc", "CREATE DATABASE %s" % db], check=True)
        env["DATABASE_URL"] = "postgres://postgres@127.0.0.1:5432/%s" % db
    else:
        env.pop("DATABASE_URL", None)
    run = lambda *a: subprocess.run([BIN, *a], env=env, check=True, capture_output=True, text=True).stdout.strip()
    run("init")
    archivist = run("token", "create", "--role", "archivist", "--name", "bench")
    out = run("import", "--json", os.path.join(ROOT, "fixtures", "valid", "food-licence.zip"))
    first = json.loads(out)["results"][0]["archive_id"]

    t0 = time.time()
    fill(env, first)
    print("filled %d cases in %.0f s" % (N, time.time() - t0), flush=True)

    log = open(os.path.join(work, "server.log"), "w")
    server = subprocess.Popen([BIN, "serve"], env=env, stderr=log, stdout=log)
    try:
        base = "http://127.0.0.1:%d" % PORT
        for _ in range(300):
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        # Sign in: the session cookie from the 303.
        req = urllib.request.Request(base + "/login", data=urllib.parse.urlencode({"token": archivist}).encode(), method="POST")
        opener = urllib.request.build_opener(NoRedirect)
        try:
            opener.open(req)
        except urllib.error.HTTPError as e:
            cookie = e.headers["Set-Cookie"].split(";")[0]
        code = "GD01-ZY·2025-D30-11370102MB2854637K-%06d" % (N // 2)
        pages = [
            ("console: case list, first page", "/cases", {"Cookie": cookie}),
            ("console: search by archival code", "/cases?q=" + urllib.parse.quote(code), {"Cookie": cookie}),
            ("console: overview", "/", {"Cookie": cookie}),
            ("API: GET /api/v1/cases", "/api/v1/cases", {"Authorization": "Bearer " + archivist}),
            ("API: search by archival code", "/api/v1/cases?q=" + urllib.parse.quote(code), {"Authorization": "Bearer " + archivist}),
        ]
        print("| %s | server ms (median / p95) | client ms (median) |" % ("page at %d cases%s" % (N, " (PostgreSQL)" if PG else " (SQLite)")))
        print("|---|---|---|")
        for name, path, headers in pages:
            client = []
            for i in range(21):
                t = time.perf_counter()
                r = urllib.request.urlopen(urllib.request.Request(base + path, headers=headers))
                body = r.read()
                if i:
                    client.append((time.perf_counter() - t) * 1000)
            assert code.encode() in body or "q=" not in path, "%s did not find %s" % (name, code)
            time.sleep(0.3)
            log.flush()
            route = "/api/v1/cases" if path.startswith("/api/v1/cases") else ("/" if path == "/" else "/cases")
            server_ms = [int(m) for m in re.findall(r'route=%s}: guidang::http: request status=200 ms=(\d+)' % re.escape(route),
                                                   open(os.path.join(work, "server.log")).read())]
            # The last 20 lines of this route are this page's timed requests.
            s = sorted(server_ms[-20:])
            print("| %s | %d / %d | %.1f |" % (name, statistics.median(s), s[int(len(s) * 0.95) - 1], statistics.median(client)), flush=True)
    finally:
        server.terminate()
        server.wait()


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *a, **k):
        return None


def fill(env, first):
    """N-1 copies of the first case's row, each its own case (ids, codes, times)."""
    if PG:
        cols = subprocess.run(["psql", env["DATABASE_URL"], "-Atc",
                               "SELECT column_name FROM information_schema.columns WHERE table_name='cases' ORDER BY ordinal_position"],
                              check=True, capture_output=True, text=True).stdout.split()
    else:
        con = sqlite3.connect(os.path.join(env["GUIDANG_DATA_DIR"], "guidang.db"))
        cols = [r[1] for r in con.execute("PRAGMA table_info(cases)")]
    over = {
        "archive_id": "'bench-' || lpad_i",
        "project_id": "'BENCH-' || lpad_i",
        "archival_code": "'GD01-ZY·2025-D30-11370102MB2854637K-' || lpad_i",
        "archived_at": "'2025-' || mm || '-15T08:00:00.000Z'",
        "year": "2025",
        "status": "'archived'",
    }
    exprs = [over.get(c, "t." + c) for c in cols]
    if PG:
        lp, mm = "lpad(i::text, 6, '0')", "lpad((1 + i % 12)::text, 2, '0')"
        sql = ("INSERT INTO cases (%s) SELECT %s FROM generate_series(1, %d) AS g(i), (SELECT * FROM cases WHERE archive_id = '%s') t"
               % (", ".join(cols), ", ".join(e.replace("lpad_i", lp).replace("mm", mm) for e in exprs), N - 1, first))
        subprocess.run(["psql", env["DATABASE_URL"], "-qc", sql], check=True)
        # A server that has run a while has been vacuumed (visibility map set: index-only scans).
        subprocess.run(["psql", env["DATABASE_URL"], "-qc", "VACUUM ANALYZE cases"], check=True)
    else:
        lp, mm = "substr('000000' || i, -6)", "substr('00' || (1 + i % 12), -2)"
        sql = ("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < %d) "
               "INSERT INTO cases (%s) SELECT %s FROM n, (SELECT * FROM cases WHERE archive_id = '%s') t"
               % (N - 1, ", ".join(cols), ", ".join(e.replace("lpad_i", lp).replace("mm", mm) for e in exprs), first))
        con.execute(sql)
        con.commit()
        con.execute("ANALYZE")
        con.close()


if __name__ == "__main__":
    main()
