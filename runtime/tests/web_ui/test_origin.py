"""Origin isolation in headless Chromium: a hostile public Space opened by a
signed-in user of another account. runtime/tests/origin_isolation.rs starts
`spaceport up` and runs this script; it reads:

  SPACEPORT_URL      the hub, e.g. http://127.0.0.1:8080
  SPACEPORT_TOKEN    a token of the victim, alice
  SPACEPORT_EVIL     the hostile public static Space (owner/name)
  SPACEPORT_PRIVATE  alice's private Space (owner/name)

The hostile app's script (fixtures/hub/evil-static/evil.js) tries to read
alice's private Spaces, her identity and her settings page through her
session, to read and plant cookies, and writes what it got into #out. It is
opened every way a browser can meet it: on its own host, framed by its page
on the hub, and on the path route of the hub's own port. Every check prints
a line; the script exits non-zero when one fails.
"""
import json
import os
import sys
import urllib.parse

from selenium.webdriver.common.by import By

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import check, load, main, wait_for  # noqa: E402

URL = os.environ["SPACEPORT_URL"].rstrip("/")
TOKEN = os.environ["SPACEPORT_TOKEN"]
EVIL = os.environ["SPACEPORT_EVIL"]
PRIVATE = os.environ["SPACEPORT_PRIVATE"]
PORT = urllib.parse.urlsplit(URL).port
PRIVATE_NAME = PRIVATE.split("/")[1]


def host_url(space):
    return f"http://{space.replace('/', '-')}.localhost:{PORT}/"


def loot(d):
    """What the hostile script recorded in the current document."""
    text = wait_for("the hostile script's report",
                    lambda: d.find_element(By.ID, "out").text, timeout=20)
    return json.loads(text)


def assert_contained(where, out):
    print(f"     {where}: {json.dumps(out)[:600]}")
    check(f"{where}: alice's private Space list is not readable",
          PRIVATE_NAME not in out["list"] and not out["list"].startswith("200"), out["list"])
    check(f"{where}: alice's identity is not readable",
          "alice" not in out["whoami"] and not out["whoami"].startswith("200"), out["whoami"])
    check(f"{where}: alice's settings page is not readable",
          not out["settings"].startswith("200") and "csrf" not in out["settings"],
          out["settings"])
    check(f"{where}: the hub's API is not readable as the visitor on the app's own origin",
          "alice" not in out["same_origin_api"], out["same_origin_api"])
    check(f"{where}: no hub cookie is visible to the script",
          "spaceport" not in out["cookie"], out["cookie"])


def whoami(d):
    load(d, URL + "/api/whoami-v2")
    return d.find_element(By.TAG_NAME, "body").text


def run(d):
    # alice signs in to the hub.
    load(d, URL + "/signin")
    d.find_element(By.ID, "token").send_keys(TOKEN)
    d.find_element(By.CSS_SELECTOR, "form[action='/signin'] button[type=submit]").click()
    wait_for("signed in", lambda: "Sign out" in d.page_source)
    before = {c["name"]: c["value"] for c in d.get_cookies()}
    check("alice is signed in", '"alice"' in whoami(d), whoami(d))
    load(d, URL + "/api/spaces?author=alice")
    check("alice herself reads her private Space list",
          PRIVATE_NAME in d.page_source, d.page_source[:300])

    # 1. The hostile app on its own host, opened directly.
    load(d, host_url(EVIL))
    assert_contained("its own host", loot(d))

    # 2. Its page on the hub frames it: no click needed.
    load(d, URL + f"/spaces/{EVIL}")
    frame = d.find_element(By.CSS_SELECTOR, "iframe.app")
    src = frame.get_attribute("src")
    check("the hub frames the app from its own host", src.startswith(host_url(EVIL)), src)
    d.switch_to.frame(frame)
    try:
        assert_contained("framed by its page", loot(d))
    finally:
        d.switch_to.default_content()

    # 3. The path route, on the hub's own port and host.
    load(d, URL + f"/apps/{EVIL}/")
    out = loot(d)
    assert_contained("the path route on the hub's port", out)
    check("the path route runs sandboxed (opaque origin, no storage)",
          out["origin"] == "null" and out["storage"].startswith("blocked:"), out)

    # Afterwards alice is still alice: no cookie was planted or replaced.
    after = {c["name"]: c["value"] for c in d.get_cookies()}
    check("the hub's cookies are unchanged by the app", before == after, (before, after))
    check("alice is still signed in as herself", '"alice"' in whoami(d), whoami(d))

    # Her own private Space still opens for her, in its frame, on its own host.
    load(d, URL + f"/spaces/{PRIVATE}")
    frame = d.find_element(By.CSS_SELECTOR, "iframe.app")
    src = frame.get_attribute("src")
    check("her private Space is framed from its own host with a ticket",
          src.startswith(host_url(PRIVATE) + "?__sign="), src)
    d.switch_to.frame(frame)
    try:
        heading = wait_for("the private app", lambda: d.find_element(By.TAG_NAME, "h1").text,
                           timeout=20)
        check("her private Space opens for her in the frame", "Hello" in heading, heading)
    finally:
        d.switch_to.default_content()
    # In a tab of its own, the same ticket opens it too (the cookie is kept
    # per top-level site), and without the cookie its host answers 404.
    load(d, src)
    check("the private app opens in its own tab with the ticket",
          "Hello" in d.page_source, d.page_source[:200])
    check("the ticket is gone from the address", "__sign" not in d.current_url, d.current_url)
    load(d, host_url(PRIVATE))
    check("... and again from its cookie", "Hello" in d.page_source, d.page_source[:200])
    # Every cookie of the browser, partitioned ones included; a new query
    # keeps the browser's cache out of it.
    d.execute_cdp_cmd("Network.clearBrowserCookies", {})
    load(d, host_url(PRIVATE) + "?after=clearing")
    check("the private app's host answers 404 without its cookie",
          "Hello" not in d.page_source, d.page_source[:200])

if __name__ == "__main__":
    sys.exit(main(run))
