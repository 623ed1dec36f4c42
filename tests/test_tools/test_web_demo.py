"""The web demo: its callback on bad uploads (one line naming the file,
no traceback), the answer and the most similar training images, its temp
folder, and tools/web_demo.py in a real headless browser (Debian's
chromium, driven by Playwright): upload a bundled image, read the top-1
class and the answer, see the Grad-CAM image and the training images,
upload a bad file."""
import glob
import os
import os.path as osp
import shutil
import struct
import subprocess
import sys
import time
import urllib.request
import zlib

import pytest

from conftest import DEMO_DATA, REPO, free_port, load_tool, make_image

CHROMIUM = '/usr/bin/chromium'
# No sandbox (root in CI), no GPU, no traffic of its own (updates, sync,
# QUIC probes): the page is all it talks to.
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync']


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


def _png_declaring(path, width, height):
    """A PNG whose header declares ``width`` x ``height`` (no pixels)."""
    def chunk(kind, data):
        return (struct.pack('>I', len(data)) + kind + data +
                struct.pack('>I', zlib.crc32(kind + data)))
    header = struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', header) +
                     chunk(b'IDAT', zlib.compress(b'')) + chunk(b'IEND', b''))
    return path


def _bad_uploads(folder):
    """{file: what the page must say about it}."""
    with open(glob.glob(osp.join(DEMO_DATA, '*', '*.jpg'))[0], 'rb') as f:
        jpeg = f.read()
    png = open(make_image(str(folder / 'ok.png'), size=(200, 160)),
               'rb').read()
    files = {'text.png': b'hello, I am text\n', 'empty.png': b'',
             'cut.jpg': jpeg[:len(jpeg) // 2], 'cut.png': png[:len(png) // 2]}
    for name, data in files.items():
        (folder / name).write_bytes(data)
    _png_declaring(folder / 'bomb.png', 30000, 30000)  # PIL: an error
    _png_declaring(folder / 'big.png', 10000, 10000)  # PIL: a warning
    unreadable = 'not an image'
    return {folder / 'text.png': unreadable, folder / 'empty.png': unreadable,
            folder / 'cut.jpg': 'cannot decode image',
            folder / 'cut.png': 'cannot decode image',
            folder / 'bomb.png': 'image too large to decode safely',
            folder / 'big.png': 'image too large to decode safely'}


@pytest.fixture(scope='module')
def demo_inferencer(quickstart_model):
    from rock_plugin.apis.inferencer import RockInferencer
    return RockInferencer(quickstart_model['config'],
                          quickstart_model['checkpoint'])


def test_bad_uploads_are_one_line_naming_the_file(demo_inferencer,
                                                  tmp_path, capsys):
    import gradio as gr
    from gradio.data_classes import ImageData
    build_demo = load_tool('_web_demo').build_demo
    demo = build_demo(demo_inferencer)
    # the callback Gradio runs for the Run button and for an upload, with
    # the file as Gradio received it: Gradio does not open it first
    event = next(f for f in demo.fns.values() if f.api_name == 'predict')
    assert event.fn == demo.rock_tab.inference and not event.preprocess
    callback = event.fn
    capsys.readouterr()
    for path, says in _bad_uploads(tmp_path).items():
        with pytest.raises(gr.Error) as error:
            callback(ImageData(path=str(path), orig_name=path.name)
                     .model_dump())
        assert error.value.message.startswith(f'{path.name}: {says}'), \
            error.value.message
        assert '\n' not in error.value.message
        assert not error.value.print_exception
        out, err = capsys.readouterr()
        assert out == '' and 'Traceback' not in err
        assert err.splitlines() == [f'web demo: {error.value.message}']
    # the page shows the message as HTML: the user's file name is escaped
    odd = tmp_path / 'a<b>\x1b.png'
    odd.write_text('text')
    with pytest.raises(gr.Error) as error:
        callback(ImageData(path=str(odd), orig_name=odd.name).model_dump())
    assert error.value.message.startswith('a&lt;b&gt;\\x1b.png: not an')
    assert capsys.readouterr().err.startswith('web demo: a<b>\\x1b.png: ')
    # a readable image still gets its scores, class names made printable
    demo_inferencer.classes[:] = [f'{c}\x1b]0;x\x07'
                                  for c in demo_inferencer.classes]
    try:
        scores, overlay, answer, gallery = callback(
            str(tmp_path / 'ok.png'))  # a path too
    finally:
        demo_inferencer.classes[:] = [c[:-len('\x1b]0;x\x07')]
                                      for c in demo_inferencer.classes]
    assert len(scores) == 5 and overlay is None
    assert all(c.endswith('\\x1b]0;x\\x07') for c in scores)
    assert '\x1b' not in answer and all('\x1b' not in caption
                                        for _, caption in gallery)
    assert callback(None) == (None, None, None, None)


def test_the_answer_and_the_most_similar_training_images(
        demo_inferencer, tmp_path):
    from rock_plugin.apis.inferencer import list_images
    demo = load_tool('_web_demo').build_demo(demo_inferencer)
    image = list_images(osp.join(DEMO_DATA, 'Chert'))[0]
    result = demo_inferencer(image)[0]
    threshold = demo_inferencer.novelty_threshold
    _, _, answer, gallery = demo.rock_tab.inference(image)
    first, second = answer.splitlines()[:2]
    assert first == result['answer'] != 'unknown (unlike every trained ' \
        'class)' and f'{result["novelty"]:.2f}' in second
    assert f'threshold {threshold:.2f}' in second
    # the stored training paths are relative to the repository: here
    # (the tests run there) the three images are found
    assert len(gallery) == 3
    for rank, ((thumb, caption), near) in enumerate(
            zip(gallery, result['neighbors']), 1):
        assert thumb.ndim == 3 and max(thumb.shape[:2]) == 320
        assert caption == (f'{rank}. {near["class"]}, similarity '
                           f'{near["similarity"]:.3f} '
                           f'({osp.basename(near["file"])})')
    # everything unknown; a training image moved away is named, not shown
    demo_inferencer.unknown_threshold = -1000
    gone = dict(result['neighbors'][0], file=str(tmp_path / 'gone.jpg'))
    try:
        text, gallery = load_tool('_web_demo').evidence(
            dict(result, unknown=True, neighbors=[gone] + result[
                'neighbors'][1:]), -1000)
        assert demo.rock_tab.inference(image)[2].startswith(
            'unknown (unlike every trained class)\nnovelty ')
    finally:
        demo_inferencer.unknown_threshold = None
    assert 'above the threshold -1000.00' in text
    assert len(gallery) == 2
    assert text.splitlines()[-1].startswith('not on this machine: 1. ')
    assert text.endswith('(gone.jpg)')


def test_the_demo_temp_folder_is_its_own_and_removed(tmp_path,
                                                     monkeypatch):
    demo_temp_dir = load_tool('_web_demo').demo_temp_dir
    monkeypatch.delenv('GRADIO_TEMP_DIR', raising=False)
    with demo_temp_dir() as folder:
        assert os.environ['GRADIO_TEMP_DIR'] == folder
        open(osp.join(folder, 'upload.png'), 'w').close()
    assert not osp.exists(folder) and 'GRADIO_TEMP_DIR' not in os.environ
    mine = tmp_path / 'my_gradio'  # a user's choice holds the folder
    monkeypatch.setenv('GRADIO_TEMP_DIR', str(mine))
    with demo_temp_dir() as folder:
        assert osp.dirname(folder) == str(mine)
    assert os.environ['GRADIO_TEMP_DIR'] == str(mine)
    assert mine.is_dir() and not os.listdir(mine)


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

    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    bad = tmp_path / 'not_an_image.png'
    bad.write_text('hello, I am text\n')
    temp_root = tmp_path / 'gradio'  # the demo's own folder goes in here
    proc = subprocess.Popen(
        [sys.executable, 'tools/web_demo.py', quickstart_model['config'],
         quickstart_model['checkpoint'], '--port', str(port)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, env={**os.environ, 'OMP_NUM_THREADS': '1',
                        'GRADIO_ANALYTICS_ENABLED': 'False',
                        'GRADIO_TEMP_DIR': str(temp_root)})
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
        # the answer, and the three most similar training images
        answer = page.locator('#answer_result textarea').input_value()
        assert answer.splitlines()[0] == true_class
        assert 'novelty' in answer and 'threshold' in answer
        page.wait_for_function(
            "() => document.querySelectorAll('#neighbors_result img')"
            '.length >= 3', timeout=60000)
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
        # a bad upload: one line on the page naming the file
        page.set_input_files('#input_image input[type=file]', str(bad))
        page.get_by_text('not_an_image.png: not an image (unrecognised '
                         'file format)').first.wait_for(timeout=60000)
        uploads = glob.glob(str(temp_root / 'rock_web_demo_*' / '**' /
                                '*.*'), recursive=True)
        assert {osp.basename(p) for p in uploads} >= {
            osp.basename(image), 'not_an_image.png'}
        page.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
    log = proc.stdout.read()
    assert proc.returncode == 0, log[-3000:]
    assert 'Traceback' not in log, log[-3000:]
    assert [line for line in log.splitlines()
            if 'not_an_image.png' in line] == [
        'web demo: not_an_image.png: not an image (unrecognised file '
        'format)']
    # SIGTERM: the uploads and overlays went with the demo's folder
    assert temp_root.is_dir() and not os.listdir(temp_root)
    if os.environ.get('ROCK_WEB_DEMO_SCREENSHOT'):
        # How docs/images/web_demo.png is made (see the README).
        shutil.copy(shot, os.environ['ROCK_WEB_DEMO_SCREENSHOT'])


def test_unknown_threshold_flag(quickstart_model, monkeypatch):
    """--unknown-threshold reaches the inferencer the page scores with."""
    tool = load_tool('web_demo')
    args = tool.parse_args([quickstart_model['config'],
                            quickstart_model['checkpoint'], '--no-cam',
                            '--unknown-threshold', '-1000'])
    assert args.unknown_threshold == -1000
    seen = {}
    import _web_demo  # the module serve_args imports (tools/ on the path)
    monkeypatch.setattr(_web_demo, 'serve',
                        lambda demo, **kw: seen.update(demo=demo))
    tool.serve_args(args)
    image = sorted(glob.glob(osp.join(DEMO_DATA, 'Chert', '*.jpg')))[0]
    answer = seen['demo'].rock_tab.inference(image)[2]
    assert answer.startswith('unknown (unlike every trained class)')
