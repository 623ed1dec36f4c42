"""tools/web_demo.py in a real headless browser (Debian's chromium,
driven by Playwright): upload a bundled image, read the top-1 class, see the
Grad-CAM image."""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from conftest import DEMO_DATA, REPO

CHROMIUM = '/usr/bin/chromium'
# No sandbox (root in CI), no GPU, no traffic of its own (updates, sync,
# QUIC probes): the page is all it talks to.
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _wait_for_server(proc, url, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f'web_demo exited {proc.returncode}:\n'
                                 f'{proc.stdout.read()[-4000:]}')
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f'web_demo did not answer on {url}')


@pytest.fixture(scope='module')
def browser():
    if not osp.isfile(CHROMIUM):
        if os.environ.get('CI'):
            pytest.fail(f'{CHROMIUM} missing: .ci/run installs it '
                        '(apt-get install chromium)')
        pytest.skip(f'{CHROMIUM} not installed (apt-get install chromium)')
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM,
                                    args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_web_demo_in_a_browser(quickstart_model, browser, tmp_path):
    from rock_plugin.apis.inferencer import RockInferencer, list_images
    classes = sorted(d for d in os.listdir(DEMO_DATA)
                     if osp.isdir(osp.join(DEMO_DATA, d)))
    # The bundled image the model is surest of (the short-trained test
    # model is right on most, not all).
    inferencer = RockInferencer(quickstart_model['config'],
                                quickstart_model['checkpoint'])
    firsts = [list_images(osp.join(DEMO_DATA, c))[0] for c in classes]
    results = inferencer(firsts)
    right = [(r['pred_score'], path, c) for r, path, c in
             zip(results, firsts, classes) if r['pred_class'] == c]
    assert right, 'the test model gets no bundled image right'
    _, image, true_class = max(right)

    port = _free_port()
    url = f'http://127.0.0.1:{port}/'
    proc = subprocess.Popen(
        [sys.executable, 'tools/web_demo.py', quickstart_model['config'],
         quickstart_model['checkpoint'], '--port', str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, 'OMP_NUM_THREADS': '1',
                        'GRADIO_ANALYTICS_ENABLED': 'False'})
    try:
        _wait_for_server(proc, url)
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        page.goto(url)
        # the bundled thin sections are offered as examples
        page.get_by_text('Bundled thin sections').wait_for(timeout=60000)
        page.set_input_files('#input_image input[type=file]', image)
        cam = page.locator('#cam_result img')
        cam.wait_for(state='visible', timeout=120000)
        page.wait_for_function(
            "() => { const i = document.querySelector('#cam_result img');"
            " return i && i.complete && i.naturalWidth > 0; }",
            timeout=60000)
        label = page.locator('#cls_result')
        # gr.Label: the top-1 class as the heading, then the 5 bars
        top1 = label.locator('h2').inner_text(timeout=30000).strip()
        assert top1 == true_class
        text = label.inner_text()
        assert sum(c in text.split() for c in classes) == 5
        size = page.evaluate("document.querySelector('#cam_result img')"
                             '.naturalWidth')
        assert size == 260  # the model's input crop with the heat map
        shot = tmp_path / 'web_demo.png'
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10000
        page.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    if os.environ.get('ROCK_WEB_DEMO_SCREENSHOT'):
        # How docs/images/web_demo.png is made (see the README).
        shutil.copy(shot, os.environ['ROCK_WEB_DEMO_SCREENSHOT'])
