#!/usr/bin/env python3
"""The console in a real browser: headless Chromium (Debian's chromium + chromium-driver) over
WebDriver (selenium). Run by tests/it/console.rs with a JSON file naming a live server, its
tokens and fixtures: signs in, searches the fixture case by archival code, opens it and reads the
GD report, imports a ZIP through the page, proposes a disposal, sees four eyes refuse the
proposer as administrator and a second administrator approve, signs out. On every page: no
browser console errors, no serious accessibility violation (axe-core, vendored), every form
control labelled, and a screenshot saved. Exit 0 when all of it held; otherwise the first
failure is printed and the exit is 1.
"""
import json
import os
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

HERE = os.path.dirname(os.path.abspath(__file__))
AXE = open(os.path.join(HERE, "vendor", "axe-4.14.1.min.js"), encoding="utf-8").read()


class Console:
    def __init__(self, cfg):
        self.cfg = cfg
        self.base = cfg["base"]
        self.shots = cfg["screenshots"]
        os.makedirs(self.shots, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = cfg.get("chromium", "/usr/bin/chromium")
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1280,1100", "--lang=zh-CN"):
            opts.add_argument(a)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        # Debian's driver, named: selenium would otherwise try to download one.
        self.d = webdriver.Chrome(options=opts, service=Service(cfg.get("chromedriver", "/usr/bin/chromedriver")))
        self.d.set_script_timeout(30)
        self.n = 0
        self.checked = []

    def wait(self, cond, t=20):
        return WebDriverWait(self.d, t).until(cond)

    def text_appears(self, css, text, t=30):
        self.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text), t)

    def page(self, name):
        """The checks every page gets, then its screenshot."""
        d = self.d
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete")
        errors = [e for e in d.get_log("browser") if e.get("level") == "SEVERE"]
        # A 4xx answered to an action the test expects to be refused is logged by the browser as
        # a failed resource; anything else is a defect.
        errors = [e for e in errors if not ("/api/v1/" in e.get("message", "")
                                            and ("status of 403" in e.get("message", "") or "status of 422" in e.get("message", "")))]
        assert not errors, "%s: browser console errors: %r" % (name, errors)
        unlabelled = d.execute_script("""
            return Array.from(document.querySelectorAll('input:not([type=hidden]), select, textarea'))
              .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.outerHTML.slice(0, 120));""")
        assert not unlabelled, "%s: form controls without a label: %r" % (name, unlabelled)
        d.execute_script(AXE)
        res = d.execute_async_script("""
            const done = arguments[arguments.length - 1];
            axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})
              .then(r => done(r.violations.map(v => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 3).map(n => n.target.join(' '))}))))
              .catch(e => done([{id: 'axe-error', impact: 'critical', help: String(e), nodes: []}]));""")
        bad = [v for v in res if v["impact"] in ("serious", "critical")]
        assert not bad, "%s: accessibility violations: %s" % (name, json.dumps(bad, ensure_ascii=False))
        # Keyboard: the first Tab lands on the skip link, which leads to the main content.
        d.execute_script("document.body.setAttribute('tabindex', '-1'); document.body.focus();")
        ActionChains(d).send_keys(Keys.TAB).perform()
        focused = d.execute_script("document.body.removeAttribute('tabindex'); return document.activeElement && document.activeElement.className")
        assert focused == "skip", "%s: the first Tab goes to %r, not the skip link" % (name, focused)
        d.execute_script("document.activeElement && document.activeElement.blur()")
        self.n += 1
        height = d.execute_script("return Math.min(document.documentElement.scrollHeight, 4000)")
        d.set_window_size(1280, max(height, 800))
        d.save_screenshot(os.path.join(self.shots, "%02d-%s.png" % (self.n, name)))
        d.set_window_size(1280, 1100)
        self.checked.append(name)

    def go(self, path, name):
        self.d.get(self.base + path)
        self.page(name)

    def sign_in(self, token):
        d = self.d
        d.get(self.base + "/login")
        d.find_element(By.ID, "token").send_keys(token)
        d.find_element(By.CSS_SELECTOR, "main form button[type=submit]").click()
        self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, "form.who")))

    def sign_out(self):
        self.d.find_element(By.CSS_SELECTOR, "form.who button").click()
        self.wait(EC.presence_of_element_located((By.ID, "token")))


def main():
    cfg = json.load(open(sys.argv[1], encoding="utf-8"))
    c = Console(cfg)
    d = c.d
    try:
        c.go("/login", "login")
        c.sign_in(cfg["archivist"])
        c.page("overview")

        # Find the fixture case by its archival code, open it, read its GD report.
        code = cfg["archival_code"]
        d.get(c.base + "/cases")
        box = d.find_element(By.ID, "q")
        box.send_keys(code)
        box.submit()
        c.text_appears("main", code)
        c.page("cases-search")
        d.find_element(By.LINK_TEXT, code).click()
        c.text_appears("main", "四性检测")
        assert "GD-" in d.find_element(By.TAG_NAME, "main").text, "no GD items on the case page"
        c.page("case")

        # Import a ZIP through the page: it is archived, with a link to the new case.
        d.get(c.base + "/import")
        d.find_element(By.ID, "zips").send_keys(cfg["import_zip"])
        c.text_appears(".uploads", "已归档", 60)
        c.page("import")
        d.find_element(By.ID, "zips").send_keys(cfg["rejected_zip"])
        c.text_appears(".uploads", "encrypted_file", 60)
        c.page("import-rejected")

        c.go("/filing?year=%d" % cfg["year"], "filing")
        c.go("/transfers", "transfers")
        c.go("/transfers/" + cfg["transfer_id"], "transfer")
        # The progress part htmx swaps in every few seconds: the page asks for it by itself.
        c.text_appears("#progress", "草稿", 30)
        d.get(c.base + "/transfers/" + cfg["transfer_id"] + "/progress")
        assert "办件" in d.find_element(By.TAG_NAME, "body").text, "the progress part"
        c.go("/retention", "retention")
        c.go("/rejections", "rejections")

        # Propose the due cases for disposal.
        d.get(c.base + "/disposal")
        d.find_element(By.ID, "all").click()
        d.find_element(By.CSS_SELECTOR, "form[data-shape=proposal] button[type=submit]").click()
        c.wait(EC.url_matches(r"/disposal/[0-9a-f-]+$"), 30)
        list_url = d.current_url
        c.text_appears("main", "待审批")
        c.page("disposal-list")
        c.sign_out()

        # The proposer (the same person with an administrator's token) may not approve.
        c.sign_in(cfg["admin_same_person"])
        d.get(list_url)
        c.text_appears("main", "四眼原则")
        d.find_element(By.CSS_SELECTOR, "form[data-api$='/decision'] button[type=submit]").click()
        c.text_appears("form[data-api$='/decision'] .result", "forbidden", 30)
        refusal = d.find_element(By.CSS_SELECTOR, "form[data-api$='/decision'] .result").text
        assert "四眼原则" in refusal, refusal
        c.page("disposal-four-eyes")
        c.sign_out()

        # A second administrator approves.
        c.sign_in(cfg["admin_other"])
        c.go("/admin/tokens", "tokens")
        d.get(list_url)
        d.find_element(By.CSS_SELECTOR, "form[data-api$='/decision'] button[type=submit]").click()
        c.wait(lambda d: "已批准" in d.find_element(By.TAG_NAME, "main").text, 30)
        c.page("disposal-approved")
        c.go(list_url.replace(c.base, "") + "/print", "disposal-print")
        c.go("/audit", "audit")
        c.sign_out()
        c.page("signed-out")
        print("browser test passed: %s" % ", ".join(c.checked))
    except Exception as e:  # the first failure, with the page it happened on
        path = os.path.join(c.shots, "failure.png")
        try:
            d.save_screenshot(path)
        except Exception:
            pass
        print("browser test failed at %s: %s: %s (screenshot %s)" % (d.current_url, type(e).__name__, e, path))
        sys.exit(1)
    finally:
        d.quit()


if __name__ == "__main__":
    main()
