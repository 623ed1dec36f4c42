"""``RandomRotate90``: a random multiple of 90 degrees, without resampling."""
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness
from mmpretrain.registry import TRANSFORMS


@TRANSFORMS.register_module()
class RandomRotate90(BaseTransform):
    """Rotate the image by ``k`` x 90 degrees counter-clockwise (``np.rot90``,
    an exact pixel permutation), ``k`` drawn uniformly from {0, 1, 2, 3}.

    Thin sections have no up: after a horizontal ``RandomFlip`` (p=0.5) it
    draws each of the 8 flips and rotations of a square crop with the same
    probability (a vertical flip is a horizontal one turned by 180 degrees),
    the views the test-time augmentation averages. ``k`` comes from NumPy's
    global generator, like mmcv's ``RandomFlip``: under
    ``EpochSeededSampler`` it is a function of (seed, epoch, index), so
    ``--resume`` repeats it. A non-square image swaps height and width: put
    it after the square crop.

    Added or updated keys: ``img``, ``img_shape``, ``rotate90_k``.

    Example:
        >>> train_pipeline = [
        ...     dict(type='LoadImageWithPreResize'),
        ...     dict(type='EfficientNetRandomCrop', scale=260),
        ...     dict(type='RandomFlip', prob=0.5, direction='horizontal'),
        ...     dict(type='RandomRotate90'),
        ...     dict(type='PackInputs')]
    """

    @cache_randomness
    def _random_k(self) -> int:
        return int(np.random.randint(4))

    def transform(self, results: dict) -> dict:
        k = self._random_k()
        if k:
            # Contiguous, as a decoded image is (torch.from_numpy, cv2).
            results['img'] = np.ascontiguousarray(np.rot90(results['img'], k))
            results['img_shape'] = results['img'].shape[:2]
        results['rotate90_k'] = k
        return results
