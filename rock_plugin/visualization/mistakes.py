"""A contact sheet of the most confident mistakes of a test run."""
import math
from typing import List, Optional, Sequence

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.text import printable


def most_confident_mistakes(predictions: Sequence[dict], n: int
                            ) -> List[dict]:
    """The ``n`` wrong predictions (``PredictionCollector``'s) with the
    highest predicted-class score, most confident first, with ``pred_label``
    and ``score`` (of the predicted class) added."""
    wrong = []
    for p in predictions:
        scores = list(p['pred_score'])
        pred = max(range(len(scores)), key=scores.__getitem__)
        if pred != p['gt_label']:
            wrong.append(dict(p, pred_label=pred, score=float(scores[pred])))
    wrong.sort(key=lambda p: -p['score'])
    return wrong[:n]


def draw_mistakes_sheet(predictions: Sequence[dict],
                        class_names: Sequence[str], out_file: str,
                        n: int = 16, tile: int = 224, columns: int = 4
                        ) -> Optional[str]:
    """Save (atomically, ``.jpg`` or ``.png``) a grid of the ``n`` most
    confident mistakes of :func:`most_confident_mistakes`, ``tile`` pixels
    each, ``columns`` a row, captioned with the true and predicted class
    (``class_names``), the score and file name; returns ``out_file``, or None
    when there is no mistake."""
    from PIL import Image, ImageDraw, ImageFont
    mistakes = most_confident_mistakes(predictions, n)
    if not mistakes:
        return None
    try:
        font = ImageFont.load_default(size=13)
    except TypeError:  # Pillow < 10.1: fixed bitmap font only
        font = ImageFont.load_default()
    line_h, pad = 16, 4
    caption = 3 * line_h + pad
    columns = min(columns, len(mistakes))
    rows = math.ceil(len(mistakes) / columns)
    sheet = Image.new('RGB', (columns * (tile + pad) + pad,
                              rows * (tile + caption + pad) + pad), 'white')
    draw = ImageDraw.Draw(sheet)
    chars = max(8, tile // 7)  # characters that fit a caption line
    for i, p in enumerate(mistakes):
        x = pad + (i % columns) * (tile + pad)
        y = pad + (i // columns) * (tile + caption + pad)
        with Image.open(p['img_path']) as img:
            img = img.convert('RGB')
        img.thumbnail((tile, tile))
        # bottom-aligned: the caption sits right under every image
        sheet.paste(img, (x + (tile - img.width) // 2,
                          y + tile - img.height))
        name = p['img_path'].replace('\\', '/').rsplit('/', 1)[-1]
        lines = [(f"true: {class_names[p['gt_label']]}", (0, 110, 0)),
                 (f"pred: {class_names[p['pred_label']]}", (170, 0, 0)),
                 (f"{p['score']:.1%}  {name}", (90, 90, 90))]
        for j, (text, color) in enumerate(lines):
            text = printable(text, one_line=True)
            if len(text) > chars:
                text = text[:chars - 1] + '…'
            draw.text((x, y + tile + 2 + j * line_h), text, fill=color,
                      font=font)
    fmt = 'PNG' if out_file.lower().endswith('.png') else 'JPEG'
    with atomic_write(out_file, 'wb') as f:
        sheet.save(f, format=fmt, **({'quality': 90} if fmt == 'JPEG'
                                     else {}))
    return out_file
