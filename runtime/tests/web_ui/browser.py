"""What the browser checks share: headless Chromium (Debian's chromium and
chromium-driver, driven by selenium), a check that prints one line, waiting,
loads that survive Docker's interface changes, and plain HTTP."""
import os
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service

failed = []


def check(name, ok, detail=""):
    print(("ok   " if ok else "FAIL ") + name + ("" if ok else f": {detail}"), flush=True)
    if not ok:
        failed.append(name)
    return ok


def wait_for(what, fn, timeout=30.0, every=0.25):
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            last = fn()
            if last:
                return last
        except Exception as e:  # the page may be between loads
            last = e
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def http(url, method="GET", headers=None, data=None):
    req = urllib.request.Request(url, method=method, headers=headers or {}, data=data)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode("utf-8", "replace")


def browser():
    opts = webdriver.ChromeOptions()
    opts.binary_location = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    for a in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--window-size=1280,900", "--hide-scrollbars", "--lang=en-US"]:
        opts.add_argument(a)
    service = Service(executable_path=os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))
    d = webdriver.Chrome(service=service, options=opts)
    d.set_page_load_timeout(60)
    return d


def load(d, url):
    """Loads a page. Chromium aborts a load with ERR_NETWORK_CHANGED when an
    interface comes or goes (Docker adds and removes them as containers
    start and stop): such loads are retried."""
    for _ in range(10):
        try:
            d.get(url)
        except Exception as e:  # a timeout of an interrupted load
            print(f"     retrying {url}: {e.__class__.__name__}")
            time.sleep(0.5)
            continue
        if "ERR_NETWORK_CHANGED" not in d.page_source and "ERR_NETWORK_IO_SUSPENDED" not in d.page_source:
            return
        print(f"     retrying {url}: the network changed")
        time.sleep(0.5)
    raise AssertionError(f"could not load {url}")


def main(run):
    """Runs `run(driver)` in a fresh browser and reports: one line per
    check, then the count; the exit status is non-zero when one failed."""
    d = browser()
    try:
        run(d)
    finally:
        d.quit()
    print(f"{len(failed)} failed" if failed else "all passed")
    return 1 if failed else 0
