"""Headless Debian chromium driven by selenium through Debian's chromedriver (no downloads)."""
import os
import shutil
import tempfile

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


def missing():
    """Why a browser cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return "%s is missing (Debian packages chromium and chromium-driver; make deps)" % path
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (requirements-test.txt)"
    return None


class Browser:
    def __init__(self, width=1280, height=900):
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
        os.environ["SE_OFFLINE"] = "true"      # never let Selenium Manager fetch anything
        self.profile = tempfile.mkdtemp(prefix="webui-chromium-")
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in FLAGS:
            options.add_argument(flag)
        options.add_argument("--user-data-dir=" + self.profile)
        options.add_argument("--window-size=%d,%d" % (width, height))
        self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        self.driver.set_page_load_timeout(30)

    def quit(self):
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)


def _retry_stale(action, selector):
    # app.js replaces the status rows on every poll: an element just found may be gone a moment
    # later; then look it up again.
    from selenium.common.exceptions import StaleElementReferenceException
    for _ in range(20):
        try:
            return action()
        except StaleElementReferenceException:
            continue
    raise AssertionError("%s kept being replaced while used" % selector)


def text_of(driver, selector):
    """Text of the first element matching selector, "" when there is none."""
    def read():
        found = driver.find_elements("css selector", selector)
        return found[0].text if found else ""
    return _retry_stale(read, selector)


def click(driver, selector):
    _retry_stale(lambda: driver.find_element("css selector", selector).click(), selector)


def alert(driver, timeout=60):
    """The JavaScript dialog once it is open (a confirm() of the page)."""
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(
        expected_conditions.alert_is_present(), "no dialog opened")
