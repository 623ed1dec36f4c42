"""Training previews: a labelled batch, a validation grid with mistakes
framed red (drawn by :class:`rock_plugin.engine.hooks.TrainingPreviewHook`)."""
from typing import List, Optional, Sequence, Tuple

import numpy as np

from .annotate import (BLACK, GREEN, RED, image_grid, labelled_tile,
                       text_band)


def tensors_to_rgb(images, to_rgb: bool) -> List[np.ndarray]:
    """``N x C x H x W`` (or a list of ``C x H x W``) 0-255 tensors -> RGB
    ``uint8`` arrays; ``to_rgb`` says whether the channels are RGB already."""
    arrays = [img.detach().float().clamp(0, 255).byte().cpu().numpy()
              .transpose(1, 2, 0) for img in images]
    return [np.ascontiguousarray(a if to_rgb else a[..., ::-1])
            for a in arrays]


def draw_train_batch(images: Sequence[np.ndarray], labels: Sequence[str],
                     size: int = 192) -> np.ndarray:
    """A grid of training images, each labelled with its class."""
    return image_grid([labelled_tile(img, [label], size)
                       for img, label in zip(images, labels)])


def draw_val_predictions(images: Sequence[np.ndarray],
                         rows: Sequence[Tuple[str, float, str]],
                         size: int = 192,
                         title: Optional[str] = None) -> np.ndarray:
    """A grid of RGB images, each with its ``(predicted class, score, true
    class)`` row, mistakes framed red; ``title`` adds a count line above."""
    tiles = []
    for img, (pred, score, true) in zip(images, rows):
        wrong = pred != true
        tiles.append(labelled_tile(
            img, [f'pred: {pred} {score:.2f}', f'true: {true}'], size,
            frame=RED if wrong else None,
            colors=[RED if wrong else GREEN, BLACK]))
    grid = image_grid(tiles)
    if title:
        wrong = sum(p != t for p, _, t in rows)
        head = text_band([f'{title}: {len(rows) - wrong}/{len(rows)} right'],
                         grid.shape[1])
        grid = np.concatenate([head, grid])
    return grid
