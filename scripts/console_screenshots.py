#!/usr/bin/env python3
"""Screenshots of the console as a user sees it, in headless Chromium over WebDriver.

`python3 scripts/console_screenshots.py [OUT_DIR]` after `cargo build --release`: starts a
server on a fresh data directory, archives the fixture case, signs in with an archivist token and
saves a PNG of each page (default `target/screenshots/`). Needs Debian's `chromium`,
`chromium-driver`, `fonts-wqy-microhei` and PyPI's `selenium`.
"""
import os, subprocess, sys, tempfile, time, urllib.error, urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.environ.get("GUIDANG_BIN") or os.path.join(ROOT, "target", "release", "guidang")
PORT = 18471


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target", "screenshots")
    os.makedirs(out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="guidang-console-")
    env = dict(os.environ, GUIDANG_DATA_DIR=work, GUIDANG_LISTEN="127.0.0.1:%d" % PORT, GUIDANG_LOG="warn")
    env.pop("DATABASE_URL", None)
    run = lambda *a: subprocess.run([BIN, *a], env=env, check=True, capture_output=True, text=True).stdout.strip()
    run("init")
    archivist = run("token", "create", "--role", "archivist", "--name", "档案室 张敏")
    submitter = run("token", "create", "--role", "submitter", "--org", "11370102MB2854637K", "--name", "一网通办")
    admin = run("token", "create", "--role", "admin", "--name", "分管领导 刘强")
    server = subprocess.Popen([BIN, "serve"], env=env)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/healthz" % PORT, timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        with open(os.path.join(ROOT, "fixtures", "valid", "food-licence.zip"), "rb") as f:
            req = urllib.request.Request("http://127.0.0.1:%d/api/v1/cases" % PORT, data=f.read(), method="POST",
                                         headers={"Authorization": "Bearer " + submitter, "Content-Type": "application/zip"})
            case = __import__("json").loads(urllib.request.urlopen(req).read())
        with open(os.path.join(ROOT, "fixtures", "bad", "encrypted_file-owner-only.zip"), "rb") as f:
            req = urllib.request.Request("http://127.0.0.1:%d/api/v1/cases" % PORT, data=f.read(), method="POST",
                                         headers={"Authorization": "Bearer " + submitter, "Content-Type": "application/zip"})
            try:
                urllib.request.urlopen(req)
            except urllib.error.HTTPError:
                pass  # 422: the rejection the page lists
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1280,1000", "--lang=zh-CN"):
            opts.add_argument(a)
        # Debian's driver, named: selenium would otherwise try to download one.
        d = webdriver.Chrome(options=opts, service=Service("/usr/bin/chromedriver"))
        try:
            base = "http://127.0.0.1:%d" % PORT
            d.get(base + "/")
            d.save_screenshot(os.path.join(out, "01-login.png"))
            d.find_element(By.ID, "token").send_keys(archivist)
            d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            d.save_screenshot(os.path.join(out, "02-overview.png"))
            d.get(base + "/cases?q=泉城")
            d.save_screenshot(os.path.join(out, "03-cases.png"))
            d.get(base + "/cases/" + case["archive_id"])
            d.set_window_size(1280, 2600)
            d.save_screenshot(os.path.join(out, "04-case.png"))
            d.set_window_size(1280, 1000)
            d.get(base + "/rejections")
            d.save_screenshot(os.path.join(out, "05-rejections.png"))
            d.find_element(By.CSS_SELECTOR, "form.who button").click()
            d.find_element(By.ID, "token").send_keys(admin)
            d.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
            d.get(base + "/audit")
            d.save_screenshot(os.path.join(out, "06-audit.png"))
            d.get(base + "/admin/tokens")
            d.save_screenshot(os.path.join(out, "07-tokens.png"))
            errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
            if errors:
                sys.exit("browser console errors: %r" % errors)
        finally:
            d.quit()
    finally:
        server.terminate()
        server.wait()
    print("screenshots in", out)


if __name__ == "__main__":
    main()
