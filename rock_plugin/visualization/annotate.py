"""Labelled image tiles and grids, for previews and predictions.

OpenCV, not matplotlib: these run on a hook's background thread (pyplot is
not thread-safe) and per video frame. Images are RGB ``uint8`` ``H x W x 3``.
"""
import functools
import os.path as osp
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.text import printable

RED = (220, 30, 30)
GREEN = (40, 160, 60)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (190, 190, 190)
Color = Tuple[int, int, int]


def fit_size(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` scaled so that its longer side is ``size`` pixels."""
    import cv2
    h, w = image.shape[:2]
    scale = size / max(h, w)
    if scale == 1:
        return image
    return cv2.resize(image, (max(1, round(w * scale)),
                              max(1, round(h * scale))),
                      interpolation=cv2.INTER_AREA if scale < 1 else
                      cv2.INTER_LINEAR)


def text_band(lines: Sequence[str], width: int,
              colors: Optional[Sequence[Color]] = None,
              background: Color = WHITE) -> np.ndarray:
    """A ``width``-wide RGB band with one text line per entry, the font
    shrunk until the longest line fits (class names can be long); control
    characters in names are drawn as ``\\xNN`` escapes."""
    import cv2
    font = cv2.FONT_HERSHEY_SIMPLEX
    lines = [printable(line, one_line=True) for line in lines]
    scale = max(0.3, min(0.6, width / 400))
    longest = max(lines, key=len) if lines else ''
    while scale > 0.25 and \
            cv2.getTextSize(longest, font, scale, 1)[0][0] > width - 8:
        scale -= 0.05
    line_h = int(cv2.getTextSize('Ag', font, scale, 1)[0][1] * 1.9) + 2
    band = np.full((line_h * len(lines) + 4, width, 3), background, np.uint8)
    for i, line in enumerate(lines):
        color = colors[i] if colors else BLACK
        cv2.putText(band, line, (4, line_h * (i + 1) - line_h // 4), font,
                    scale, color, 1, cv2.LINE_AA)
    return band


def labelled_tile(image: np.ndarray, lines: Sequence[str],
                  size: Optional[int] = 224, frame: Optional[Color] = None,
                  colors: Optional[Sequence[Color]] = None) -> np.ndarray:
    """An RGB image, its longer side scaled to ``size`` (None: kept), above
    a band of text ``lines`` (``colors``: one RGB colour a line), framed 4 px
    in RGB ``frame`` if given."""
    import cv2
    image = fit_size(image, size) if size else image
    tile = np.concatenate([image, text_band(lines, image.shape[1], colors)])
    if frame is not None:
        tile = np.ascontiguousarray(tile)
        cv2.rectangle(tile, (1, 1), (tile.shape[1] - 2, tile.shape[0] - 2),
                      frame, 4)
    return tile


def image_grid(tiles: Sequence[np.ndarray], cols: Optional[int] = None,
               pad: int = 4, background: Color = WHITE) -> np.ndarray:
    """Tiles of any size in rows of ``cols`` (default: about square), RGB."""
    if not tiles:
        raise ValueError('no tiles to draw')
    cols = cols or int(np.ceil(np.sqrt(len(tiles))))
    rows = int(np.ceil(len(tiles) / cols))
    cell_h = max(t.shape[0] for t in tiles) + pad
    cell_w = max(t.shape[1] for t in tiles) + pad
    grid = np.full((rows * cell_h + pad, cols * cell_w + pad, 3), background,
                   np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, cols)
        y, x = r * cell_h + pad, c * cell_w + pad
        grid[y:y + tile.shape[0], x:x + tile.shape[1]] = tile
    return grid


def topk_lines(topk: Sequence[Tuple[str, float]]) -> list:
    """``['1. Chert 0.931', '2. Bauxite 0.040', ...]``."""
    return [f'{i}. {name} {score:.3f}'
            for i, (name, score) in enumerate(topk, 1)]


def draw_topk_on_frame(frame: np.ndarray,
                       topk: Sequence[Tuple[str, float]]) -> np.ndarray:
    """A copy of a BGR or RGB frame with its top-k ``(class, score)`` pairs
    in a translucent box in the top-left corner."""
    width = min(frame.shape[1], max(160, min(frame.shape[1] // 2, 360)))
    band = text_band(topk_lines(topk), width)
    h = min(band.shape[0], frame.shape[0])
    w = min(band.shape[1], frame.shape[1])
    out = frame.copy()
    region = out[:h, :w].astype(np.float32)
    out[:h, :w] = (0.35 * region + 0.65 * band[:h, :w]).astype(np.uint8)
    return out


def save_image(path: str, image: np.ndarray, quality: int = 90) -> None:
    """Write an RGB image atomically (``.jpg``/``.png`` by extension)."""
    import cv2
    ext = osp.splitext(path)[1].lower() or '.png'
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if ext in ('.jpg',
                                                            '.jpeg') else []
    ok, data = cv2.imencode(ext, np.ascontiguousarray(image[..., ::-1]),
                            params)
    if not ok:
        raise ValueError(f'{path}: OpenCV cannot encode {ext} images')
    with atomic_write(path, 'wb') as f:
        f.write(data.tobytes())


def image_row(tiles: Sequence[np.ndarray], pad: int = 4,
              background: Color = WHITE) -> np.ndarray:
    """RGB tiles of any size side by side, top-aligned, ``pad`` px apart
    and around (each keeps its width, unlike :func:`image_grid`)."""
    height = max(t.shape[0] for t in tiles) + 2 * pad
    width = sum(t.shape[1] for t in tiles) + pad * (len(tiles) + 1)
    row = np.full((height, width, 3), background, np.uint8)
    x = pad
    for tile in tiles:
        row[pad:pad + tile.shape[0], x:x + tile.shape[1]] = tile
        x += tile.shape[1] + pad
    return row


@functools.lru_cache(maxsize=64)
def thumbnail(path: str, size: int = 160) -> Optional[np.ndarray]:
    """The image at ``path`` as RGB ``uint8``, its longer side ``size``
    px (cached: the same training images come back; read-only),
    or None when it is not a readable image file on this machine.

    Example:
        >>> thumbnail('data/Chert/Chert1_1.jpg', 160).shape
        (120, 160, 3)
    """
    from PIL import Image
    if not osp.isfile(path):  # also no devices or pipes named by a model
        return None
    try:
        with Image.open(path) as img:
            img.draft('RGB', (size, size))  # JPEG: decode at 1/2 .. 1/8
            img = img.convert('RGB')
            img.thumbnail((size, size))
            array = np.asarray(img, np.uint8)
    except Exception:  # PIL's many errors, its decompression bomb's too
        return None
    array = np.array(fit_size(array, size))  # small images: enlarged
    array.flags.writeable = False
    return array


def _short_name(path: str, width: int = 28) -> str:
    name = printable(osp.basename(path or '') or '?', one_line=True)
    return name if len(name) <= width else '...' + name[-(width - 3):]


def neighbor_tile(neighbor: Dict[str, Any], rank: int,
                  size: int = 160) -> np.ndarray:
    """One training image of the evidence: its thumbnail (a grey square
    naming the file when it is not on this machine) above its rank, class,
    cosine similarity and file name.

    Args:
        neighbor (dict): ``file``, ``class``, ``similarity`` (a result's
            ``neighbors`` entry of ``RockInferencer``).
        rank (int): 1 for the most similar.
        size (int): Longer side of the thumbnail. Defaults to 160.

    Returns:
        np.ndarray: RGB ``uint8``, ``size`` px wide.
    """
    path = neighbor.get('file')
    image = thumbnail(path, size) if path else None
    if image is None:
        image = np.full((size, size, 3), GREY, np.uint8)
        note = text_band(['not on this machine:', _short_name(path)], size,
                         background=GREY)
        top = max(0, (size - note.shape[0]) // 2)
        image[top:top + note.shape[0]] = note[:size - top]
    elif image.shape[1] < size:  # portrait: centred, the column even
        row = np.full((image.shape[0], size, 3), WHITE, np.uint8)
        x = (size - image.shape[1]) // 2
        row[:, x:x + image.shape[1]] = image
        image = row
    lines = [f'{rank}. {printable(neighbor.get("class") or "?")}',
             f'similarity {neighbor.get("similarity", float("nan")):.3f}',
             _short_name(path)]
    return labelled_tile(image, lines, None)


def evidence_panel(neighbors: Sequence[Dict[str, Any]],
                   size: int = 160) -> np.ndarray:
    """The most similar training images, a column under a title (see
    :func:`neighbor_tile`)."""
    tiles = [text_band(['most similar', 'training images'], size)]
    tiles += [neighbor_tile(n, i, size) for i, n in enumerate(neighbors, 1)]
    return np.concatenate(tiles)


def annotate_prediction(image: np.ndarray,
                        topk: Sequence[Tuple[str, float]],
                        overlay: Optional[np.ndarray] = None,
                        cam_class: Optional[str] = None,
                        size: int = 448,
                        answer: Optional[str] = None,
                        unknown: bool = False,
                        novelty: Optional[float] = None,
                        threshold: Optional[float] = None,
                        neighbors: Optional[Sequence[Dict[str, Any]]] = None
                        ) -> np.ndarray:
    """An image above its answer, novelty and top-k classes and scores;
    with ``overlay`` (a CAM heat map) that beside it, labelled with
    ``cam_class``; with ``neighbors`` the most similar training images
    in a column on the right (the evidence).

    Args:
        image (np.ndarray): RGB ``uint8``.
        topk: ``(class, score)`` pairs, best first.
        overlay (np.ndarray, optional): RGB ``uint8`` CAM overlay.
        cam_class (str, optional): The class the overlay explains.
        size (int): Longer side of each picture. Defaults to 448.
        answer (str, optional): The answer (the top-1 class, or the
            unknown label), first line of the caption, red when
            ``unknown``.
        unknown (bool): Whether the image is unlike the training classes.
        novelty (float, optional): Its novelty score.
        threshold (float, optional): The novelty threshold in force.
        neighbors (list[dict], optional): ``file``, ``class``,
            ``similarity`` of the nearest training images.

    Returns:
        np.ndarray: RGB ``uint8``.

    Example:
        >>> annotate_prediction(rgb, [('Chert', 0.9), ('Bauxite', 0.1)],
        ...                     answer='Chert', novelty=-1.2,
        ...                     threshold=2.6).shape[1]
        448
    """
    lines, colors = [], []
    if answer is not None:
        lines.append(f'answer: {printable(answer)}')
        colors.append(RED if unknown else GREEN)
    if novelty is not None:
        limit = '' if threshold is None else \
            f' ({">" if unknown else "<="} threshold {threshold:.2f})'
        lines.append(f'novelty {novelty:.2f}{limit}')
        colors.append(RED if unknown else BLACK)
    top = [(printable(c), s) for c, s in topk]
    lines += topk_lines(top)
    colors += [BLACK] * len(top)
    tiles = [labelled_tile(image, lines, size, colors=colors)]
    if overlay is not None:
        tiles.append(labelled_tile(
            overlay, [f'Grad-CAM: {printable(cam_class)}'], size))
    if neighbors:
        tiles.append(evidence_panel(neighbors))
    return image_row(tiles) if len(tiles) > 1 else tiles[0]


def annotate_result(image: np.ndarray, result: Dict[str, Any],
                    threshold: Optional[float] = None,
                    overlay: Optional[np.ndarray] = None) -> np.ndarray:
    """:func:`annotate_prediction` of one ``RockInferencer`` result (its
    ``topk``; ``answer``, ``unknown``, ``novelty`` and ``neighbors`` when
    the model has a feature bank), ``overlay`` explaining its top-1 class.

    Example:
        >>> r = inferencer('a.jpg')[0]
        >>> annotate_result(rgb, r, inferencer.novelty_threshold)
    """
    # Without a bank the answer is the top-1 class: not drawn twice.
    known = result.get('novelty') is not None
    return annotate_prediction(
        image, result['topk'], overlay, result.get('pred_class'),
        answer=result.get('answer') if known else None,
        unknown=bool(result.get('unknown')),
        novelty=result.get('novelty'), threshold=threshold,
        neighbors=result.get('neighbors'))
