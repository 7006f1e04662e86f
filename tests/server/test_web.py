"""The web chat page (GET /) in headless Chromium: type a message, watch the
streamed answer arrive, stop a second one mid-way. Saves a screenshot next to
the test's scratch folder (build/tests/server/server_web.png) as an artifact.
Exits 77 (ctest: skipped) when Chromium, chromedriver or Selenium are missing."""

import os
import shutil
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import selenium  # noqa: F401
except ImportError:
    # Debian's python3-selenium lives in the system interpreter's dist-packages.
    sys.path.append("/usr/lib/python3/dist-packages")
try:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
except ImportError:
    print("skipped: python3-selenium is not installed")
    sys.exit(77)

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if not CHROMEDRIVER or not CHROMIUM:
    print("skipped: chromium / chromium-driver are not installed")
    sys.exit(77)

try:
    import openai
except ImportError:
    sys.exit("error: the server tests need the openai client: pip install openai")


def wait_for(condition, timeout=120, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting for the page")


class WebPageTest(unittest.TestCase):
    def test_chat_page_streams_and_stops(self):
        server = harness.ServerProcess(harness.gemma_model(), api_key=harness.API_KEY)
        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for flag in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1200,800"]:
            options.add_argument(flag)
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        try:
            driver.get(server.base_url + "/")
            # Without the key the page says why it cannot list the model.
            wait_for(lambda: "API key" in driver.find_element(By.ID, "info").text)
            key = driver.find_element(By.ID, "apikey")
            key.send_keys(harness.API_KEY, Keys.TAB)  # change event: stored, model info reloaded
            wait_for(lambda: "model: server_gemma2" in driver.find_element(By.ID, "info").text)

            def set_field(field, value):
                element = driver.find_element(By.ID, field)
                element.clear()
                element.send_keys(value)

            set_field("temperature", "0")
            set_field("max_tokens", "24")
            box = driver.find_element(By.ID, "input")
            box.send_keys("Hello there!", Keys.ENTER)
            answers = lambda: driver.find_elements(By.CSS_SELECTOR, ".msg.assistant")  # noqa: E731
            wait_for(lambda: answers() and answers()[0].get_attribute("data-state") == "done")
            shown = answers()[0].find_element(By.CSS_SELECTOR, ".body").text
            client = openai.OpenAI(base_url=server.base_url + "/v1", api_key=harness.API_KEY, max_retries=0)
            reference = client.chat.completions.create(
                model="any", messages=[{"role": "user", "content": "Hello there!"}], max_tokens=24, temperature=0,
                top_p=0.95)
            # The browser renders text with whitespace collapsed at the edges.
            self.assertEqual(shown.strip(), reference.choices[0].message.content.strip())
            self.assertIn("length", answers()[0].find_element(By.CSS_SELECTOR, ".stats").text)

            # A long sampled answer (slow: full-vocabulary sampling), stopped once text has appeared.
            before = server.metrics()["gemmarun_cancelled_requests_total"]
            set_field("temperature", "1")
            set_field("top_k", "0")
            set_field("top_p", "1")
            set_field("max_tokens", "400")
            box.send_keys("Tell me everything.", Keys.ENTER)
            wait_for(lambda: len(answers()) == 2 and answers()[1].find_element(By.CSS_SELECTOR, ".body").text)
            driver.find_element(By.ID, "stop").click()
            wait_for(lambda: answers()[1].get_attribute("data-state") in ("stopped", "done"))
            self.assertEqual(answers()[1].get_attribute("data-state"), "stopped")
            self.assertTrue(driver.find_element(By.ID, "send").is_enabled())
            wait_for(lambda: server.metrics()["gemmarun_cancelled_requests_total"] == before + 1, timeout=60)
            wait_for(lambda: server.metrics()["gemmarun_running_sequences"] == 0, timeout=60)
            shot = os.path.join(harness.WORK_DIR, "server_web.png")
            driver.save_screenshot(shot)
            print("screenshot: " + shot)
        finally:
            driver.quit()
            self.assertEqual(server.stop(), 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
