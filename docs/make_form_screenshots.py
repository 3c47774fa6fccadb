"""Make the screenshots of the demo form that docs/forms.md shows:

    python docs/make_form_screenshots.py [OUT_DIR]   (default: docs/)

writes forms-normal.png, forms-validation.png and forms-conflict.png. It
starts its own ``twistd -n hpxd`` (the demo app, two users) in a temporary
directory and drives Debian's chromium with playwright, as
tests/test_forms_browser.py does; both are needed.
"""

import io
import re
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from playwright.sync_api import expect  # noqa: E402

from tests.forms_browser import (add_contact, config, http_log_in, logged_in_page,  # noqa: E402
                                 origin, wait_for_countries)
from tests.support import Daemon, chromium  # noqa: E402

VIEWPORT = {"width": 900, "height": 860}


def avatar():
    """A PNG to upload: a disc on a soft background."""
    from PIL import Image, ImageDraw
    image = Image.new("RGB", (240, 240), (221, 244, 255))
    ImageDraw.Draw(image).ellipse((40, 40, 200, 200), fill=(9, 105, 218))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def form_page(browser, daemon, user, record_id=None):
    page = logged_in_page(browser, daemon, user, VIEWPORT)
    page.goto(origin(daemon) + "/forms/contact" + (f"?r={record_id}" if record_id else ""))
    expect(page.locator("input[name=tabUniqId]")).not_to_have_value("")
    return page


def normal(browser, daemon, record_id, out):
    page = form_page(browser, daemon, "ann", record_id)
    with page.expect_response(lambda r: "/forms/api/file" in r.url):
        page.set_input_files("#f-avatar", files=[{"name": "ada.png", "mimeType": "image/png",
                                                   "buffer": avatar()}])
    page.click("button[value=save]")
    expect(page.locator("#hpxd-alerts")).to_contain_text("Saved.")
    page.reload()
    expect(page.locator("#group-avatar img[data-download]")).to_be_visible()
    page.wait_for_function("() => [...document.images].every(i => i.complete)")
    page.screenshot(path=out / "forms-normal.png")
    page.context.close()


def validation(browser, daemon, out):
    page = form_page(browser, daemon, "ann")
    page.fill("#f-name", "Grace Hopper")
    page.fill("#f-email", "grace at navy")
    page.click("button[value=save]")
    expect(page.locator("#group-email")).to_have_class(re.compile(r"\bhas-error\b"))
    expect(page.locator("#hpxd-alerts .hpxd-alert-error")).to_be_visible()
    page.screenshot(path=out / "forms-validation.png")
    page.context.close()


def conflict(browser, daemon, record_id, out):
    ann = form_page(browser, daemon, "ann", record_id)
    with ann.expect_response(lambda r: "/forms/api/dirty" in r.url):
        ann.fill("#f-company", "Analytical Engines Ltd")
    bob = form_page(browser, daemon, "bob", record_id)
    bob.fill("#f-email", "ada@example.org")
    expect(bob.locator(".hpxd-modal [role=alertdialog]")).to_be_visible()
    bob.screenshot(path=out / "forms-conflict.png")
    bob.context.close()
    ann.context.close()


def main(out):
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        daemon = Daemon(tmp, config(), name="screenshots").start()
        try:
            wait_for_countries(daemon)
            cookie = http_log_in(daemon, "ann")
            record_id = add_contact(daemon, cookie, name="Ada Lovelace",
                                    email="ada@example.org", has_company="true",
                                    company="Analytical Engines", country="United Kingdom")
            with chromium("the form screenshots") as browser:
                normal(browser, daemon, record_id, out)
                validation(browser, daemon, out)
                conflict(browser, daemon, record_id, out)
        finally:
            daemon.stop()
    for name in ("forms-normal.png", "forms-validation.png", "forms-conflict.png"):
        print(out / name)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else REPO / "docs")
