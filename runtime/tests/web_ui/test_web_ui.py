"""Browser checks of the hub's web UI in headless Chromium (Debian's chromium
and chromium-driver, driven by selenium). runtime/tests/web_ui.rs starts
`spaceport up` and runs this script; it reads:

  SPACEPORT_URL          the hub, e.g. http://127.0.0.1:8080
  SPACEPORT_TOKEN        a token of the admin user
  SPACEPORT_PUBLIC       a running public static Space (owner/name)
  SPACEPORT_PRIVATE      a private Space
  SPACEPORT_LOG_SPACE    a running Space whose app logs each request (optional)
  SPACEPORT_SCREENSHOTS  where the screenshots go

Every check prints a line; the script exits non-zero when one fails.
"""
import json
import os
import sys
import time
import urllib.parse
import uuid

from selenium.webdriver.common.by import By

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from browser import check, load, main, wait_for  # noqa: E402
from browser import http as browser_http  # noqa: E402

URL = os.environ["SPACEPORT_URL"].rstrip("/")
TOKEN = os.environ["SPACEPORT_TOKEN"]
PUBLIC = os.environ["SPACEPORT_PUBLIC"]
PRIVATE = os.environ["SPACEPORT_PRIVATE"]
LOG_SPACE = os.environ.get("SPACEPORT_LOG_SPACE", "")
SHOTS = os.environ["SPACEPORT_SCREENSHOTS"]
os.makedirs(SHOTS, exist_ok=True)


def http(method, path, headers=None, data=None):
    return browser_http(URL + path, method, headers, data)


def api(path):
    status, body = http("GET", path, {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200, (path, status, body)
    return json.loads(body)


def visit_app(space, query="", agent="ui-test"):
    owner, name = space.split("/")
    return http(
        "GET",
        f"/apps/{owner}/{name}/{query}",
        {"Accept": "text/html,*/*;q=0.8", "User-Agent": agent},
    )


def goto(d, path):
    load(d, URL + path)


def submit(d, path, fill, expect):
    """Loads a page, fills and sends a form (`fill` clicks its button), and
    waits for `expect` on the answer; the whole is tried again when the
    network changed under it (the forms used here may be sent twice)."""
    last = None
    for _ in range(5):
        goto(d, path)
        fill()
        try:
            return wait_for(expect, lambda: expect in d.page_source, timeout=10)
        except AssertionError as e:
            last = e
            print(f"     sending the form of {path} again")
    raise AssertionError(f"the form of {path} did not lead to {expect!r}: {last}")


def app_in_frame(d, path):
    """The heading of the app in the page's frame. The page is loaded again
    when the frame's load was interrupted (see goto)."""
    last = None
    for _ in range(5):
        goto(d, path)
        frame = d.find_element(By.CSS_SELECTOR, "iframe.app")
        src = frame.get_attribute("src")
        d.switch_to.frame(frame)
        try:
            return src, wait_for("the app in the frame",
                                 lambda: d.find_element(By.TAG_NAME, "h1").text, timeout=10)
        except AssertionError as e:
            last = e
            print(f"     reloading {path}: the frame shows no app yet")
        finally:
            d.switch_to.default_content()
    raise AssertionError(f"no app in the frame of {path}: {last}")


def shot(d, name):
    # The whole page: the window grows to the document's height first.
    width = d.execute_script("return window.innerWidth")
    height = d.execute_script("return Math.max(document.body.scrollHeight, 600)")
    d.set_window_size(max(width, 390), min(height + 120, 4000))
    path = os.path.join(SHOTS, name)
    d.save_screenshot(path)
    print(f"     screenshot {path}")


def unlabelled_fields(d):
    return d.execute_script(
        """
        return Array.from(document.querySelectorAll('input, select, textarea'))
          .filter(e => e.type !== 'hidden')
          .filter(e => !(e.id && document.querySelector('label[for="' + e.id + '"]'))
                       && !e.closest('label') && !e.getAttribute('aria-label'))
          .map(e => e.name || e.outerHTML);
        """
    )


def fits_width(d):
    return d.execute_script(
        "return document.documentElement.scrollWidth <= window.innerWidth + 1"
    )


def cards(d):
    return [c.get_attribute("data-space") for c in d.find_elements(By.CSS_SELECTOR, "a.card")]


def run(d):
    # Signed out: the public Space is listed, the private one is not, and
    # its page is "not found".
    goto(d, "/")
    check("the gallery lists the example Space", PUBLIC in cards(d), cards(d))
    check("a private Space is not listed signed out", PRIVATE not in cards(d), cards(d))
    goto(d, f"/spaces/{PRIVATE}")
    check("a private Space's page is not found signed out", "Space not found" in d.page_source)
    status, _ = http("GET", f"/spaces/{PRIVATE}")
    check("... with status 404", status == 404, status)

    # Sign in with the token.
    goto(d, "/signin")
    check("the sign-in page labels its field", unlabelled_fields(d) == [], unlabelled_fields(d))

    def sign_in():
        d.find_element(By.ID, "token").send_keys(TOKEN)
        d.find_element(By.CSS_SELECTOR, "form[action='/signin'] button[type=submit]").click()

    submit(d, "/signin", sign_in, "Sign out")
    cookie = d.get_cookie("spaceport_session")
    check("the session cookie is HttpOnly and SameSite=Lax",
          bool(cookie) and cookie.get("httpOnly") and cookie.get("sameSite") == "Lax", cookie)
    check("the session cookie holds a session id, not the token",
          bool(cookie) and TOKEN not in cookie.get("value", ""))

    # Gallery, signed in.
    goto(d, "/")
    check("the private Space is listed signed in", PRIVATE in cards(d), cards(d))
    goto(d, "/?sdk=static")
    check("the sdk filter keeps static Spaces", PUBLIC in cards(d), cards(d))
    if LOG_SPACE:
        check("the sdk filter drops docker Spaces", LOG_SPACE not in cards(d), cards(d))
    goto(d, "/?q=no-such-space-anywhere")
    check("a search with no match says so", "No Space matches" in d.page_source)
    goto(d, "/")
    check("gallery fields are labelled", unlabelled_fields(d) == [], unlabelled_fields(d))
    shot(d, "gallery.png")
    d.set_window_size(1280, 900)

    # The public Space's page shows its app in the frame.
    src, text = app_in_frame(d, f"/spaces/{PUBLIC}")
    port = urllib.parse.urlsplit(URL).port
    own = f"http://{PUBLIC.replace('/', '-')}.localhost:{port}/"
    check("the frame shows the app from its own host (another origin)", src == own, src)
    check("the app shows inside the frame", "Hello from a static Space" in text, text)
    badge = d.find_element(By.CSS_SELECTOR, ".badge[data-live]")
    check("the stage badge is live", badge.text == "RUNNING", badge.text)
    check("the embed snippet is shown", "frameborder" in d.page_source)
    shot(d, "space.png")
    d.set_window_size(1280, 900)

    # The private Space's app opens in the frame for its signed-in owner,
    # on its own host too: the frame's URL carries a ticket that the proxy
    # exchanges for a cookie of the app's host.
    src, text = app_in_frame(d, f"/spaces/{PRIVATE}")
    own_private = f"http://{PRIVATE.replace('/', '-')}.localhost:{port}/"
    check("a private app is framed from its own host with a ticket",
          src.startswith(own_private + "?__sign=spt1."), src)
    check("a private app opens in the frame for its owner", "Hello" in text, text)

    # Live logs: a line the app writes after the page loaded shows up.
    if LOG_SPACE:
        goto(d, f"/spaces/{LOG_SPACE}")
        wait_for("the run log to be followed",
                 lambda: d.find_element(By.ID, "run-log").get_attribute("data-lines"))
        marker = "marker-" + uuid.uuid4().hex[:12]
        status, _ = visit_app(LOG_SPACE, f"?{marker}")
        check("the log Space answers", status == 200, status)
        try:
            wait_for("the marker in the run log",
                     lambda: marker in d.find_element(By.ID, "run-log").text, timeout=30)
            check("the log view receives a line written after the page loaded", True)
        except AssertionError as e:
            check("the log view receives a line written after the page loaded", False, e)
        shot(d, "space-logs.png")
        d.set_window_size(1280, 900)
    else:
        print("skip the live log check: no Space that logs (needs Docker)")

    # Analytics reflect visits made now.
    before = int(api(f"/api/spaces/{PUBLIC}/analytics?days=1")["totals"]["visits"])
    for i in range(3):
        visit_app(PUBLIC, "", agent=f"ui-test-visitor-{i}")
    want = before + 3

    def chart_visits():
        goto(d, f"/spaces/{PUBLIC}/analytics")
        v = int(d.find_element(By.ID, "visits-total").get_attribute("data-visits"))
        return v >= want and v

    try:
        got = wait_for("the visits in the chart", chart_visits, timeout=30, every=1.0)
        check("the analytics chart reflects the visits made", True)
    except AssertionError as e:
        got = None
        check("the analytics chart reflects the visits made", False, e)
    svg = d.find_elements(By.CSS_SELECTOR, "svg#visits rect")
    check("the visits chart is an SVG with bars", len(svg) > 0, len(svg))
    if got:
        titles = " ".join(r.get_attribute("innerHTML") for r in svg)
        check("today's bar carries the count", f": {got} " in titles, titles[-300:])
    shot(d, "analytics.png")
    d.set_window_size(1280, 900)
    goto(d, "/analytics")
    check("the node page has the GPU panel", d.find_elements(By.ID, "gpus") != [])
    shot(d, "node-analytics.png")
    d.set_window_size(1280, 900)

    # Settings: the sleep time set here is what the API reports.
    goto(d, f"/spaces/{PUBLIC}/settings")
    check("settings fields are labelled", unlabelled_fields(d) == [], unlabelled_fields(d))

    def set_sleep():
        field = d.find_element(By.ID, "s-sleep")
        field.clear()
        field.send_keys("1234")
        field.find_element(By.XPATH, "./ancestor::form").find_element(By.CSS_SELECTOR, "button").click()

    submit(d, f"/spaces/{PUBLIC}/settings", set_sleep, "Sleep time saved")
    runtime = api(f"/api/spaces/{PUBLIC}/runtime")
    check("the sleep time set in the settings is what the API reports",
          runtime.get("gcTimeout") == 1234, runtime.get("gcTimeout"))

    # A form without its CSRF token is refused, even with the session cookie.
    session = d.get_cookie("spaceport_session")["value"]
    status, _ = http(
        "POST", f"/spaces/{PUBLIC}/settings/sleep",
        {"Cookie": f"spaceport_session={session}",
         "Content-Type": "application/x-www-form-urlencoded"},
        b"seconds=60",
    )
    check("a form without the CSRF token gets 403", status == 403, status)
    status, _ = http(
        "POST", f"/spaces/{PUBLIC}/settings/sleep",
        {"Cookie": f"spaceport_session={session}",
         "Content-Type": "application/x-www-form-urlencoded"},
        b"seconds=60&csrf=forged",
    )
    check("a form with a wrong CSRF token gets 403", status == 403, status)
    check("... and changes nothing", api(f"/api/spaces/{PUBLIC}/runtime").get("gcTimeout") == 1234)
    status, _ = http(
        "POST", f"/api/spaces/{PUBLIC}/sleeptime",
        {"Cookie": f"spaceport_session={session}", "Content-Type": "text/plain"},
        b'{"seconds": 60}',
    )
    check("the cookie alone does not change anything through the API", status == 401, status)

    # Phone width: nothing is wider than the screen.
    d.set_window_size(390, 844)
    for path in ["/", f"/spaces/{PUBLIC}", f"/spaces/{PUBLIC}/settings",
                 f"/spaces/{PUBLIC}/analytics", "/analytics"]:
        goto(d, path)
        check(f"{path} fits a phone's width", fits_width(d),
              d.execute_script("return document.documentElement.scrollWidth"))
    goto(d, "/")
    shot(d, "gallery-phone.png")

    # Without JavaScript: the content is in the HTML itself.
    cookie_hdr = {"Cookie": f"spaceport_session={session}"}
    for path, needle in [("/", f'data-space="{PUBLIC}"'),
                         (f"/spaces/{PUBLIC}", 'iframe class="app"'),
                         (f"/spaces/{PUBLIC}/analytics", "<svg"),
                         (f"/spaces/{PUBLIC}/settings", 'id="s-sleep"'),
                         ("/analytics", 'id="gpus"')]:
        status, body = http("GET", path, cookie_hdr)
        check(f"{path} shows its content without JavaScript", status == 200 and needle in body,
              status)

    # Sign out: the private Space is hidden again.
    d.set_window_size(1280, 900)
    submit(d, "/", lambda: d.find_element(By.CSS_SELECTOR, "form[action='/signout'] button").click(),
           "Sign in")
    goto(d, "/")
    check("a private Space is not listed after sign-out", PRIVATE not in cards(d), cards(d))


if __name__ == "__main__":
    sys.exit(main(run))
