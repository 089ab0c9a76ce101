"""Debian's headless Chromium driven through its chromedriver by Selenium, for the tests and the
benchmark that open symgrad's HTML view (tests/test_viewer.py, tests/benchmarks/viewer.py).

.ci/run installs the Debian packages chromium and chromium-driver when they are absent.
"""

import shutil

BROWSERS = ("chromium", "chromium-browser")
DRIVER = "chromedriver"
STARTS = 3          # attempts to start the browser


def missing():
    """Why no headless Chromium can be opened here, or None when one can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    if not any(shutil.which(name) for name in BROWSERS):
        return "no chromium on PATH (apt-get install chromium)"
    if not shutil.which(DRIVER):
        return "no chromedriver on PATH (apt-get install chromium-driver)"
    return None


def open_chromium(width=1400, height=900):
    """A headless Chromium window of ``width`` x ``height`` pixels that keeps the page's console
    (``driver.get_log("browser")``); the caller quits it."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = next(shutil.which(n) for n in BROWSERS if shutil.which(n))
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", f"--window-size={width},{height}"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    from selenium.common.exceptions import WebDriverException
    # On a loaded machine Chromium sometimes fails to start ("DevToolsActivePort file doesn't
    # exist", "chrome not reachable"): that says nothing of the page, so starting is tried again.
    for attempt in range(STARTS):
        try:
            # the system's driver: Selenium would otherwise try to download one
            driver = webdriver.Chrome(service=Service(shutil.which(DRIVER)), options=options)
            break
        except WebDriverException:
            if attempt == STARTS - 1:
                raise
    driver.set_script_timeout(600)
    return driver


def wait_until_drawn(driver, timeout_polls=6000):
    """Wait until the viewer has drawn its first frame (window.symgradViewer.rendered)."""
    import time
    for _ in range(timeout_polls):
        if driver.execute_script("return !!(window.symgradViewer"
                                 " && window.symgradViewer.rendered)"):
            return
        time.sleep(0.05)
    raise AssertionError("the viewer never drew its first frame; console: "
                         f"{driver.get_log('browser')}")
