"""A Gradio page for a rock classifier: top-5 classes, the answer (a class,
or "unknown" when the image is unlike every trained class) with its novelty
score, the most similar training images and a Grad-CAM overlay, laid out
like mmpretrain's ``projects/gradio_demo`` for one trained model.

Uploads reach our code as file paths, undecoded, and are read by the same
loader as ``tools/predict.py``: a bad file (not an image, empty, truncated,
a decompression bomb) is one line on the page and one on the server.
"""
import contextlib
import html
import os
import os.path as osp
import shutil
import signal
import sys
import tempfile
import threading
import time
import warnings
from typing import Iterator, Optional, Sequence, Tuple, Union

from PIL import Image

TITLE = 'Rock thin-section classifier'
TEMP_ENV = 'GRADIO_TEMP_DIR'
_BOMB_ERRORS = (Image.DecompressionBombError, Image.DecompressionBombWarning)


def bundled_examples(root: str, per_class: int = 1) -> list:
    """The first ``per_class`` image(s) of each class folder under ``root``,
    sorted; empty when ``root`` is missing."""
    from rock_plugin.utils.image_files import list_images
    if not osp.isdir(root):
        return []
    found = []
    for name in sorted(os.listdir(root)):
        folder = osp.join(root, name)
        if osp.isdir(folder) and not name.startswith('.'):
            found += list_images(folder)[:per_class]
    return found


def evidence(result: dict, threshold: Optional[float],
             size: int = 320) -> Tuple[str, list]:
    """What the page says beside the scores of one ``RockInferencer``
    result: the answer text (class or unknown label, novelty and
    threshold) and the gallery of the most similar training images,
    ``(RGB array, caption)`` each; those not on this machine are left out
    of the gallery and named in the text.

    Example:
        >>> text, gallery = evidence(inferencer(path)[0], 2.66)
        >>> gallery[0][1]
        '1. Chert, similarity 0.912 (Chert23_11.jpg)'
    """
    from rock_plugin.utils.text import printable
    from rock_plugin.visualization.annotate import thumbnail
    answer = printable(result.get('answer', result['pred_class']), True)
    if result.get('novelty') is None:
        return (f'{answer}\n(no novelty score: this model has no feature '
                'bank; train it again to get one)'), []
    novelty = result['novelty']
    if result.get('unknown'):
        lines = [answer, f'novelty {novelty:.2f} is above the threshold '
                 f'{threshold:.2f}; the closest class is '
                 f'{printable(result["pred_class"], True)} '
                 f'({result["pred_score"]:.3f})']
    else:
        limit = '' if threshold is None else \
            f', within the threshold {threshold:.2f}'
        lines = [answer, f'novelty {novelty:.2f}{limit}: like the training '
                 'images']
    gallery, missing = [], []
    for rank, near in enumerate(result.get('neighbors') or (), 1):
        name = printable(osp.basename(near.get('file') or '?'), True)
        caption = (f'{rank}. {printable(near.get("class") or "?", True)}, '
                   f'similarity {near["similarity"]:.3f} ({name})')
        image = thumbnail(near['file'], size) if near.get('file') else None
        if image is None:
            missing.append(caption)
        else:
            gallery.append((image, caption))
    if missing:
        lines.append('not on this machine: ' + '; '.join(missing))
    return '\n'.join(lines), gallery


class RockClassificationTab:
    """mmpretrain's ``ImageClassificationTab`` for one rock model, with the
    answer and its evidence (the most similar training images), the top-1
    class overlay of ``cam`` (if any) and ``examples`` under the input.
    """

    def __init__(self, inferencer, cam=None, examples: Sequence[str] = ()):
        self.inferencer = inferencer
        self.cam = cam
        self.examples = list(examples)
        self.tab = self.create_ui()

    def create_ui(self):
        import gradio as gr
        with gr.Row():
            with gr.Column():
                in_image = gr.Image(
                    label='Thin section', sources=['upload', 'clipboard'],
                    type='filepath', interactive=True,
                    elem_id='input_image', elem_classes='input_image')
                run_button = gr.Button('Run', variant='primary',
                                       elem_classes='run_button')
                if self.examples:
                    gr.Examples(examples=[[p] for p in self.examples],
                                inputs=in_image,
                                label='Bundled thin sections',
                                examples_per_page=len(self.examples))
            with gr.Column():
                out_answer = gr.Textbox(
                    label='Answer', lines=2, interactive=False,
                    elem_id='answer_result', elem_classes='answer_result')
                out_cls = gr.Label(label='Top-5 classes', num_top_classes=5,
                                   elem_id='cls_result',
                                   elem_classes='cls_result')
                out_cam = gr.Image(
                    label='Grad-CAM of the top-1 class', interactive=False,
                    format='png', elem_id='cam_result',
                    elem_classes='cam_result', visible=self.cam is not None)
        with gr.Row():
            out_near = gr.Gallery(
                label='Most similar training images', columns=3,
                height='auto', format='png', interactive=False,
                object_fit='contain',  # evidence: the whole image
                elem_id='neighbors_result', elem_classes='neighbors_result',
                visible=self.inferencer.open_set is not None)
        # preprocess=False: Gradio's own preprocess opens every upload with
        # PIL (type='filepath' too), so a bad file failed inside Gradio with
        # a bare "Error" and a traceback; the callback gets the file instead.
        gr.on([run_button.click, in_image.upload], self.inference,
              inputs=in_image,
              outputs=[out_cls, out_cam, out_answer, out_near],
              api_name='predict', preprocess=False)

    def inference(self, image: Union[None, str, dict]):
        """The Gradio callback: the upload (Gradio's file dict, or a path)
        -> (``{class: score}`` of the top 5, CAM overlay, answer text,
        gallery of the most similar training images; see :func:`evidence`).
        A bad file raises one ``gradio.Error`` naming it, and prints that
        line on the server.
        """
        from rock_plugin.apis.inferencer import (ImageNotFoundError,
                                                 ImageReadError)
        from rock_plugin.utils.text import printable
        path, name = _upload_path(image)
        if path is None:
            return None, None, None, None
        try:
            _refuse_decompression_bomb(path)
            result = self.inferencer(path)[0]
            overlay = None
            if self.cam is not None:
                overlay = self.cam(
                    path, target_class=result['pred_class'])['overlay']
        except (ImageNotFoundError, ImageReadError) as exc:
            reason = str(exc)
            if reason.startswith(exc.path + ': '):
                reason = reason[len(exc.path) + 2:]
            raise _upload_error(f'{name}: {reason}') from None
        except _BOMB_ERRORS:
            raise _upload_error(
                f'{name}: image too large to decode safely (over '
                f'{Image.MAX_IMAGE_PIXELS / 1e6:.0f} megapixels); downscale '
                'it') from None
        scores = {printable(c): s for c, s in result['topk'][:5]}
        text, gallery = evidence(result, self.inferencer.novelty_threshold)
        return scores, overlay, text, gallery


def _upload_path(image: Union[None, str, dict]) -> tuple:
    """``(path, name to show)`` of the callback's input; the name is the
    user's own file name where Gradio kept it."""
    if image is None or isinstance(image, str):
        return image, image and osp.basename(image)
    path, url = image.get('path'), image.get('url') or ''
    if path is None and url.startswith('data:'):  # API clients' base64
        from gradio.processing_utils import save_base64_to_cache
        from gradio.utils import get_upload_folder
        path = save_base64_to_cache(url, get_upload_folder(),
                                    image.get('orig_name'))
    if path is None:
        return None, None
    return path, image.get('orig_name') or osp.basename(path)


def _refuse_decompression_bomb(path: str) -> None:
    """Raise PIL's DecompressionBomb error/warning for ``path`` from its
    header alone; other trouble is left to the loader, which names it."""
    try:
        with open(path, 'rb') as f, Image.open(f):
            pass
    except _BOMB_ERRORS:
        raise
    except Exception:
        pass


def _upload_error(message: str):
    """``gradio.Error(message)`` for the page, the same line on the server
    (Gradio's traceback of it is off)."""
    import gradio as gr
    from rock_plugin.utils.text import printable
    message = printable(message)
    print(f'web demo: {message}', file=sys.stderr, flush=True)
    # The page renders the message as HTML; the file name is the user's.
    return gr.Error(html.escape(message, quote=False), print_exception=False)


@contextlib.contextmanager
def demo_temp_dir(prefix: str = 'rock_web_demo_') -> Iterator[str]:
    """A folder of the demo's own for Gradio's uploads and outputs (set as
    ``GRADIO_TEMP_DIR``), removed with everything in it on exit.

    Enter it before Gradio is imported (some of Gradio's folders are named
    then) and build and launch the demo inside it. A ``GRADIO_TEMP_DIR`` the
    user set holds the folder, and is left in place.

    Args:
        prefix (str): Start of the folder's name.

    Yields:
        str: The folder.

    Example:
        >>> with demo_temp_dir():
        ...     serve(build_demo(inferencer), server_port=7860)
    """
    parent = os.environ.get(TEMP_ENV)
    if parent:
        os.makedirs(parent, exist_ok=True)
    folder = tempfile.mkdtemp(prefix=prefix, dir=parent or None)
    os.environ[TEMP_ENV] = folder
    try:
        yield folder
    finally:
        if parent:
            os.environ[TEMP_ENV] = parent
        else:
            os.environ.pop(TEMP_ENV, None)
        shutil.rmtree(folder, ignore_errors=True)


def serve(demo, **launch_kwargs) -> None:
    """``demo.launch(**launch_kwargs)``, then serve until Ctrl+C or SIGTERM
    and close the server (so that :func:`demo_temp_dir` can clean up)."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, interrupt) if main else None
    try:
        demo.launch(prevent_thread_lock=True, **launch_kwargs)
        while demo.is_running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        demo.close()
        if main:
            signal.signal(signal.SIGTERM, previous)


def build_demo(inferencer, cam=None, examples: Sequence[str] = (),
               title: str = TITLE):
    """The Gradio app (not launched).

    Args:
        inferencer (RockInferencer): For the scores.
        cam (RockCAM, optional): For the overlay.
        examples (Sequence[str]): Example image paths.
        title (str): Page title.

    Returns:
        gradio.Blocks: Serve it with :func:`serve`; ``demo.rock_tab`` is the
        :class:`RockClassificationTab` (its ``inference`` is the callback).

    Note:
        The page refuses images larger than PIL's ``MAX_IMAGE_PIXELS``
        instead of decoding them: PIL's ``DecompressionBombWarning`` becomes
        an error in this process (a page can take uploads from anyone).
    """
    import gradio as gr
    warnings.filterwarnings('error', category=Image.DecompressionBombWarning)
    with gr.Blocks(analytics_enabled=False, title=title) as demo:
        gr.Markdown(f'# {title}\nDrop in a thin-section image or pick a '
                    'bundled one: the answer (or "unknown" when it is unlike '
                    'every trained class), the five most likely rock '
                    'classes, the most similar training images, and where '
                    'in the image the model looked for the first.')
        with gr.Tabs():
            with gr.TabItem('Image Classification'):
                demo.rock_tab = RockClassificationTab(inferencer, cam,
                                                      examples)
    return demo
