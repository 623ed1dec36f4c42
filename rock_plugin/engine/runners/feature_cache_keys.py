"""When cached features are still exact: the checks the caching loops share.

``CachedFeatureValLoop`` and ``FeatureCacheTrainLoop`` reuse features only
while the pipeline is deterministic and the weights, preprocessing and files
are those the features came from; these helpers say so.
"""
import hashlib
import os
from typing import List, Optional, Sequence, Tuple

import torch

#: Transforms whose output depends only on their input (no randomness).
DETERMINISTIC_TRANSFORMS = frozenset({
    'LoadImageWithPreResize', 'LoadImageFromFile', 'LoadImageFromNDArray',
    'EfficientNetCenterCrop', 'CenterCrop', 'ResizeEdge', 'Resize',
    'PackInputs', 'PackClsInputs', 'PackMultiTaskInputs', 'ToTensor',
    'ImageToTensor', 'Transpose', 'Normalize', 'ToNumpy', 'Collect', 'Pad',
    'CropToBox', 'LoadAnnotations', 'NumpyToPIL', 'PILToNumpy'})


def transform_names(dataset) -> Optional[List[str]]:
    """The class names of ``dataset``'s pipeline transforms, in order.

    Args:
        dataset: A dataset, usually an mmengine ``BaseDataset``.

    Returns:
        list[str] | None: None when it has no pipeline to check.

    Example:
        >>> transform_names(object()) is None
        True
    """
    transforms = getattr(getattr(dataset, 'pipeline', None), 'transforms',
                         None)
    return None if transforms is None else [type(t).__name__
                                            for t in transforms]


def why_not_exact(dataset, deterministic=DETERMINISTIC_TRANSFORMS,
                  hint: str = '') -> Optional[str]:
    """Why the pipeline of ``dataset`` may give other tensors on another
    pass (a transform not known to be deterministic), or None.

    Args:
        dataset: A dataset with a ``pipeline``.
        deterministic (set[str]): The transform names taken as
            deterministic.
        hint (str): Appended to the reason when a transform is unknown.

    Returns:
        str | None: The reason, or None for an exact pipeline.

    Example:
        >>> why_not_exact(object())
        'the dataset has no pipeline to check'
    """
    names = transform_names(dataset)
    if names is None:
        return 'the dataset has no pipeline to check'
    for name in names:
        if name not in deterministic:
            return (f'the pipeline holds {name}, not known to be '
                    f'deterministic{hint}')
    return None


def tensor_checksum(tensors: Sequence[torch.Tensor]) -> Tuple:
    """An exact fingerprint of tensors.

    A BLAKE2 hash of the tensors' bytes (version counters miss writes
    through ``.data``), then each tensor's shape, dtype, device and
    ``requires_grad``.

    Example:
        >>> a = tensor_checksum([torch.zeros(2)])
        >>> a == tensor_checksum([torch.zeros(2)])
        True
    """
    digest = hashlib.blake2b(digest_size=16)
    meta = []
    for t in tensors:
        meta.append((tuple(t.shape), str(t.dtype), str(t.device),
                     bool(t.requires_grad)))
        # raw bytes: numpy has no bfloat16 / float8
        flat = t.detach().cpu().contiguous().reshape(-1)
        digest.update(flat.view(torch.uint8).numpy())
    return (digest.hexdigest(), ) + tuple(meta)


def dataset_files_key(dataset) -> Tuple:
    """The dataset's identity, size, pipeline, and each image's path,
    label, size and modification time: changes when any file is replaced.

    Example:
        >>> len(dataset_files_key([]))
        4
    """
    files = []
    for i in range(len(dataset)):
        info = dataset.get_data_info(i) if hasattr(
            dataset, 'get_data_info') else {}
        path, stat = info.get('img_path'), None
        if path and os.path.exists(path):
            st = os.stat(path)
            stat = (st.st_size, st.st_mtime_ns)
        files.append((path, str(info.get('gt_label')), stat))
    return (id(dataset), len(dataset),
            repr(getattr(dataset, 'pipeline', None)), hash(tuple(files)))


def shared_rows(found, samples):
    """The rows of features another component computed, for ``samples``.

    Args:
        found (tuple): ``((features, ...), labels)`` over the whole dataset.
        samples (list[DataSample]): A batch's samples, matched by their
            ``sample_idx`` (a rank of a distributed run sees a share).

    Returns:
        tuple[Tensor] | None: None when a sample has no index or its label
        differs from the one the features were kept with.
    """
    levels, labels = found
    idxs = [None if s is None else s.metainfo.get('sample_idx')
            for s in samples or []]
    if not idxs or any(not isinstance(i, int) or not 0 <= i < len(labels)
                       for i in idxs):
        return None
    if any('gt_label' in s and int(s.gt_label) != labels[i]
           for s, i in zip(samples, idxs)):
        return None
    return tuple(level[idxs] for level in levels)
