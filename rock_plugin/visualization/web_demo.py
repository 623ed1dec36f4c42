"""A Gradio page for a rock classifier: top-5 classes and a Grad-CAM overlay,
laid out like mmpretrain's ``projects/gradio_demo`` for one trained model.
"""
import os
import os.path as osp
from typing import Optional, Sequence

import numpy as np

TITLE = 'Rock thin-section classifier'


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


class RockClassificationTab:
    """mmpretrain's ``ImageClassificationTab`` for one rock model, with the
    top-1 class overlay of ``cam`` (if any) and ``examples`` under the input.
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
                    type='numpy', image_mode='RGB', interactive=True,
                    elem_id='input_image', elem_classes='input_image')
                run_button = gr.Button('Run', variant='primary',
                                       elem_classes='run_button')
                if self.examples:
                    gr.Examples(examples=[[p] for p in self.examples],
                                inputs=in_image,
                                label='Bundled thin sections',
                                examples_per_page=len(self.examples))
            with gr.Column():
                out_cls = gr.Label(label='Top-5 classes', num_top_classes=5,
                                   elem_id='cls_result',
                                   elem_classes='cls_result')
                out_cam = gr.Image(
                    label='Grad-CAM of the top-1 class', interactive=False,
                    format='png', elem_id='cam_result',
                    elem_classes='cam_result', visible=self.cam is not None)
        for trigger in (run_button.click, in_image.upload):
            trigger(self.inference, inputs=in_image,
                    outputs=[out_cls, out_cam])

    def inference(self, image: Optional[np.ndarray]):
        """RGB array -> (``{class: score}`` of the top 5, CAM overlay)."""
        if image is None:
            return None, None
        bgr = np.ascontiguousarray(image[:, :, ::-1])  # mmcv's channel order
        result = self.inferencer([('upload', bgr)])[0]
        scores = dict(result['topk'][:5])
        overlay = None
        if self.cam is not None:
            overlay = self.cam(('upload', bgr),
                               target_class=result['pred_class'])['overlay']
        return scores, overlay


def build_demo(inferencer, cam=None, examples: Sequence[str] = (),
               title: str = TITLE):
    """The Gradio app (not launched).

    Args:
        inferencer (RockInferencer): For the scores.
        cam (RockCAM, optional): For the overlay.
        examples (Sequence[str]): Example image paths.
        title (str): Page title.

    Returns:
        gradio.Blocks: Call ``.launch(server_port=7860)`` on it.
    """
    import gradio as gr
    with gr.Blocks(analytics_enabled=False, title=title) as demo:
        gr.Markdown(f'# {title}\nDrop in a thin-section image or pick a '
                    'bundled one: the five most likely rock classes, and '
                    'where in the image the model looked for the first.')
        with gr.Tabs():
            with gr.TabItem('Image Classification'):
                RockClassificationTab(inferencer, cam, examples)
    return demo
