"""Labelled image tiles and grids, for previews and predictions.

OpenCV, not matplotlib: these run on a hook's background thread (pyplot is
not thread-safe) and per video frame. Images are RGB ``uint8`` ``H x W x 3``.
"""
import os.path as osp
from typing import Optional, Sequence, Tuple

import numpy as np

from rock_plugin.utils.atomic_io import atomic_write
from rock_plugin.utils.text import printable

RED = (220, 30, 30)
GREEN = (40, 160, 60)
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
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


def annotate_prediction(image: np.ndarray,
                        topk: Sequence[Tuple[str, float]],
                        overlay: Optional[np.ndarray] = None,
                        cam_class: Optional[str] = None,
                        size: int = 448) -> np.ndarray:
    """An image above its top-k classes and scores; with ``overlay`` (a CAM
    heat map) that beside it, labelled with ``cam_class``.

    Args:
        image (np.ndarray): RGB ``uint8``.
        topk: ``(class, score)`` pairs, best first.
        overlay (np.ndarray, optional): RGB ``uint8`` CAM overlay.
        cam_class (str, optional): The class the overlay explains.
        size (int): Longer side of each picture. Defaults to 448.

    Returns:
        np.ndarray: RGB ``uint8``.
    """
    tiles = [labelled_tile(image, topk_lines(topk), size)]
    if overlay is not None:
        tiles.append(labelled_tile(overlay, [f'Grad-CAM: {cam_class}'],
                                   size))
    return image_grid(tiles, cols=2) if len(tiles) > 1 else tiles[0]

