"""Batched prediction with a trained rock classifier: unlike mmpretrain's
``ImageClassificationInferencer`` it names every result, reports bad files
one by one and runs exported ONNX models too (ONNX Runtime)."""
import copy
import os
import os.path as osp
from typing import (Any, Callable, Dict, Iterable, Iterator, List, Optional,
                    Sequence, Tuple, Union)

import numpy as np

from rock_plugin.models.heads.open_set_head import UNKNOWN_LABEL
from rock_plugin.utils.registry_names import type_name
from rock_plugin.utils.image_files import (  # noqa: F401  (re-exported)
    IMG_EXTENSIONS as IMAGE_EXTENSIONS, list_images)

VIDEO_EXTENSIONS = ('.mp4', '.avi', '.mov', '.mkv', '.m4v', '.mpg', '.mpeg',
                    '.wmv', '.webm', '.flv')

# The ONNX model's input contract, also written into its metadata.
ONNX_INPUT_NAME = 'input'
ONNX_OUTPUT_NAME = 'scores'
ONNX_INPUT_FORMAT = ('float32 N x 3 x H x W, RGB channel order, pixel values '
                     '0-255 (not normalised: the model subtracts mean and '
                     'divides by std itself); the image already resized/'
                     'cropped like the test pipeline')

InputItem = Union[str, os.PathLike, np.ndarray, Tuple[str, np.ndarray]]
OnError = Optional[Callable[[str, Exception], None]]


class ImageNotFoundError(FileNotFoundError):
    """An input image that does not exist; ``path`` names it."""

    def __init__(self, path: str):
        super().__init__(f'{path}: no such file')
        self.path = self.filename = path

    def __str__(self) -> str:
        return self.args[0]


class ImageReadError(ValueError):
    """An input that exists but is not a readable image; ``path`` names it."""

    def __init__(self, path: str, reason: str):
        super().__init__(f'{path}: {reason}')
        self.path = path


class RockInferencer:
    """Predict rock classes of images, video frames or arrays, in batches.

    Class names come from the checkpoint's ``meta.dataset_meta``, else the
    ONNX metadata, the config's dataset, or ``class_<i>``.

    Args:
        config (str | Config): The training config.
        checkpoint (str, optional): The ``.pth`` file (optional for ONNX).
        device (str): ``'cpu'`` or ``'cuda[:N]'``.
        batch_size (int): Images per forward pass.
        topk (int): How many classes ``topk`` lists.
        backend (str): ``'pytorch'`` or ``'onnxruntime'``.
        onnx_model (str, optional): The ``.onnx`` file for ONNX Runtime.
        tta (bool): Average the scores over the config's ``tta_pipeline``.

    Example:
        >>> RockInferencer('configs/rock_b4.py', 'best.pth')(['a.jpg'])[0]
        {'file': 'a.jpg', 'pred_class': 'Chert', 'topk': [...], ...}
    """

    def __init__(self, config, checkpoint: Optional[str] = None,
                 device: str = 'cpu', batch_size: int = 8, topk: int = 5,
                 backend: str = 'pytorch', onnx_model: Optional[str] = None,
                 tta: bool = False):
        import rock_plugin  # noqa: F401  (registries, safe checkpoint loading)
        from mmengine.config import Config

        from rock_plugin.utils.checkpoint_io import load_checkpoint_file
        if backend not in ('pytorch', 'onnxruntime'):
            raise ValueError(f"backend must be 'pytorch' or 'onnxruntime', "
                             f'got {backend!r}')
        if batch_size < 1 or topk < 1:
            raise ValueError('batch_size and topk must be at least 1')
        if isinstance(config, (str, os.PathLike)):
            if not osp.isfile(config):
                raise FileNotFoundError(f'{config}: config not found')
            config = Config.fromfile(str(config))
        self.cfg = copy.deepcopy(config)
        if tta:
            if backend != 'pytorch':
                raise ValueError("tta=True runs the PyTorch model; it does "
                                 "not combine with backend='onnxruntime'")
            from rock_plugin.apis.tta import tta_config
            tta_config(self.cfg)
        self.device, self.batch_size, self.topk = device, batch_size, topk
        self.backend, self.model, self.session = backend, None, None
        #: Novelty threshold overriding the model's (``--unknown-threshold``).
        self.unknown_threshold: Optional[float] = None
        #: ``threshold``, ``bank_files``, ``bank_labels`` (or None: the
        #: model has no feature bank and gives no novelty).
        self.open_set: Optional[Dict[str, Any]] = None
        self._loader, self.pipeline = self._build_pipeline(self.cfg)

        if backend == 'pytorch':
            if checkpoint is None:
                raise ValueError('backend pytorch needs a checkpoint')
            self.model, classes, bank_files = self._build_model(
                self.cfg, checkpoint, device)
            self.open_set = _open_set_of_head(self.model, bank_files)
        else:
            from .onnx_metadata import read_onnx_metadata
            if not onnx_model:
                raise ValueError('backend onnxruntime needs the exported '
                                 'model: onnx_model=path/to/model.onnx')
            self.session = self._open_session(onnx_model, device)
            # Data from the file: only its checked fields are read.
            meta = read_onnx_metadata(
                onnx_model,
                self.session.get_modelmeta().custom_metadata_map.items(),
                pipeline=False)
            classes, self.open_set = meta['classes'], meta['open_set']
            if checkpoint is not None:
                # A mismatch means the ONNX file came from another run.
                ckpt_classes = _classes_from_checkpoint(
                    load_checkpoint_file(checkpoint, map_location='cpu'),
                    checkpoint)
                if classes and ckpt_classes and classes != ckpt_classes:
                    raise ValueError(
                        f'{onnx_model}: its classes {classes} differ from '
                        f'those of {checkpoint} {ckpt_classes}; it was '
                        'exported from another model')
                classes = classes or ckpt_classes
        self.classes = list(classes or _classes_from_config(self.cfg) or [])
        if self.session is not None:
            self._check_onnx_outputs(onnx_model)

    @classmethod
    def from_onnx(cls, onnx_model: str, device: str = 'cpu',
                  batch_size: int = 8, topk: int = 5) -> 'RockInferencer':
        """An ONNX Runtime inferencer from the ``.onnx`` file alone (test
        pipeline and classes from the metadata :func:`export_onnx` writes,
        checked as data by :func:`~.onnx_metadata.read_onnx_metadata` before
        anything is built: a ``DataError`` names the file and the key)."""
        import onnx
        from mmengine.config import Config

        from .onnx_metadata import read_onnx_metadata
        if not osp.isfile(onnx_model):
            raise FileNotFoundError(f'{onnx_model}: ONNX model not found')
        try:
            props = onnx.load(onnx_model, load_external_data=False
                              ).metadata_props
        except Exception as exc:  # protobuf's DecodeError and friends
            raise ValueError(f'{onnx_model}: not an ONNX model ({exc})'
                             ) from None
        meta = read_onnx_metadata(onnx_model,
                                  [(p.key, p.value) for p in props])
        # Only the checked copies: raw metadata never reaches a registry.
        cfg = Config(dict(test_dataloader=dict(dataset=dict(
            pipeline=meta['test_pipeline']))))
        return cls(cfg, None, device, batch_size, topk, 'onnxruntime',
                   onnx_model)

    @staticmethod
    def _build_pipeline(cfg):
        from mmcv.transforms import Compose
        from mmengine.registry import DefaultScope
        from mmpretrain.registry import TRANSFORMS
        try:
            steps = list(cfg.test_dataloader.dataset.pipeline)
        except AttributeError:
            raise KeyError('test_dataloader.dataset.pipeline (the config has '
                           'no test pipeline)') from None
        # The loading step is split off so that arrays (video frames) skip it
        # and a bad file is reported by name, not as mmcv's AssertionError.
        name = type_name(steps[0]) if steps else ''
        has_loader = name.startswith('Load') and 'Image' in name
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            loader = TRANSFORMS.build(steps[0] if has_loader else dict(
                type='LoadImageWithPreResize'))
            pipeline = Compose([TRANSFORMS.build(t)
                                for t in steps[int(has_loader):]])
        return loader, pipeline

    @staticmethod
    def _build_model(cfg, checkpoint: str, device: str):
        import torch
        from mmengine.registry import DefaultScope
        from mmengine.runner import load_checkpoint
        from mmpretrain.registry import MODELS

        from rock_plugin.utils.checkpoint_io import safe_checkpoint_loaders
        from rock_plugin.utils.errors import CheckpointError
        if str(device).startswith('cuda') and not torch.cuda.is_available():
            raise ValueError(f'device {device!r}: no CUDA device is '
                             "available here; use device='cpu'")
        # The runner hands the top-level data_preprocessor to the model; do
        # the same, or normalisation and BGR->RGB would silently be skipped.
        model_cfg = copy.deepcopy(cfg.model)
        model_cfg.setdefault('data_preprocessor', cfg.get('data_preprocessor'))
        with DefaultScope.overwrite_default_scope('mmpretrain'):
            model = MODELS.build(model_cfg)
        # No init_cfg download: the checkpoint holds every weight. strict: a
        # checkpoint of another config must fail, not leave random layers.
        try:
            with safe_checkpoint_loaders():
                ckpt = load_checkpoint(model, checkpoint, map_location='cpu',
                                       strict=True, logger='silent')
        except RuntimeError as exc:
            if isinstance(exc, CheckpointError):
                raise
            first = str(exc).strip().splitlines()
            raise ValueError(
                f'{checkpoint}: the checkpoint does not fit the config '
                f'({"; ".join(line.strip() for line in first[:3])[:400]})'
            ) from None
        model.to(device).eval()
        return (model, _classes_from_checkpoint(ckpt, checkpoint),
                _bank_files_from_checkpoint(ckpt, checkpoint))

    def _check_onnx_outputs(self, onnx_model: str) -> None:
        # Before any image is read: class names that do not fit the model
        # (an edited file, or another run's) are one clear error.
        shape = self.session.get_outputs()[0].shape
        count = shape[1] if len(shape) == 2 else None
        if self.classes and isinstance(count, int) and \
                count != len(self.classes):
            raise ValueError(
                f'{onnx_model}: the model gives {count} scores per image '
                f'but {len(self.classes)} class names were found (its '
                'metadata, the checkpoint or the config): they do not '
                'belong to this model')

    @staticmethod
    def _open_session(onnx_model: str, device: str):
        import onnxruntime as ort
        if not osp.isfile(onnx_model):
            raise FileNotFoundError(f'{onnx_model}: ONNX model not found')
        providers = ['CPUExecutionProvider']
        if str(device).startswith('cuda') and \
                'CUDAExecutionProvider' in ort.get_available_providers():
            providers.insert(0, 'CUDAExecutionProvider')
        try:
            return ort.InferenceSession(onnx_model, providers=providers)
        except Exception as exc:  # ORT raises its own types for bad files
            raise ValueError(f'{onnx_model}: not a usable ONNX model '
                             f'({str(exc).splitlines()[0][:300]})') from None

    def load(self, item: InputItem, index: int = 0) -> Tuple[str, dict]:
        """``(name, packed sample)`` of one input through the test pipeline: an
        image path, a BGR (gray, BGRA) ``uint8`` array as ``cv2.imread`` gives
        (named by ``index``), or a ``(name, array)`` pair."""
        if isinstance(item, tuple):
            name, array = item
            results = self._array_results(str(name), array)
        elif isinstance(item, np.ndarray):
            name = f'array[{index}]'
            results = self._array_results(name, item)
        elif isinstance(item, (str, os.PathLike)):
            name = os.fspath(item)
            results = self._file_results(name)
        else:
            raise ValueError(f'input {index}: expected an image path or a '
                             f'numpy array, got {type(item).__name__}')
        try:
            return name, self.pipeline(results)
        except Exception as exc:  # a transform's own failure on odd data
            raise ImageReadError(name, f'preprocessing failed '
                                 f'({type(exc).__name__}: {exc})') from None

    def _file_results(self, path: str) -> dict:
        if not osp.exists(path):
            raise ImageNotFoundError(path)
        if osp.isdir(path):
            raise ImageReadError(path, 'is a folder, not an image')
        reason = 'not a readable image (the file is corrupt, truncated or ' \
            'of another type)'
        try:
            results = self._loader(dict(img_path=path))
        except ValueError as exc:  # LoadRockImage's DataError says why
            results, reason = None, str(exc)
            if reason.startswith(path + ': '):
                reason = reason[len(path) + 2:]
        except Exception:  # mmcv's loader asserts on undecodable bytes
            results = None
        if results is None or results.get('img') is None:
            raise ImageReadError(path, reason)
        return results

    def _array_results(self, name: str, img: Any) -> dict:
        from rock_plugin.datasets.transforms.loading import to_bgr3
        if not isinstance(img, np.ndarray) or img.ndim not in (2, 3) or \
                (img.ndim == 3 and img.shape[2] not in (1, 3, 4)) or \
                min(img.shape[:2]) < 1:
            shape = getattr(img, 'shape', None)
            raise ImageReadError(name, f'expected an H x W x 3 BGR image '
                                 f'array, got {type(img).__name__} {shape}')
        img = to_bgr3(img)
        if getattr(self._loader, 'to_float32', False):
            img = img.astype(np.float32)
        return dict(img=np.ascontiguousarray(img), img_shape=img.shape[:2],
                    ori_shape=img.shape[:2])

    def __call__(self, inputs: Union[InputItem, Iterable[InputItem]],
                 on_error: OnError = None) -> List[Dict[str, Any]]:
        """:meth:`iter_predict` as a list, in input order."""
        return list(self.iter_predict(inputs, on_error=on_error))

    def iter_predict(self, inputs: Union[InputItem, Iterable[InputItem]],
                     on_error: OnError = None) -> Iterator[Dict[str, Any]]:
        """Predict lazily, reading one batch at a time (long videos too).

        Args:
            inputs: One input or an iterable of them (see :meth:`load`).
            on_error: ``on_error(name, exc)`` skips a bad input; None: raise.

        Yields:
            dict: ``file``, ``pred_label``, ``pred_class``, ``pred_score``,
            ``topk`` (best first) and ``scores`` (``{class: score}``).
        """
        if isinstance(inputs, (str, os.PathLike, np.ndarray, tuple)):
            inputs = [inputs]
        batch: List[Tuple[str, dict]] = []
        for index, item in enumerate(inputs):
            try:
                batch.append(self.load(item, index))
            except (ImageNotFoundError, ImageReadError) as exc:
                if on_error is None:
                    raise
                on_error(exc.path, exc)
                continue
            if len(batch) == self.batch_size:
                yield from self._predict_batch(batch)
                batch = []
        if batch:
            yield from self._predict_batch(batch)

    def _predict_batch(self, batch: List[Tuple[str, dict]]
                       ) -> Iterator[Dict[str, Any]]:
        samples = [sample for _, sample in batch]
        scores, extras = self._forward_pytorch(samples, full=True) \
            if self.backend == 'pytorch' else \
            self._forward_onnx(samples, full=True)
        if not self.classes:
            self.classes = [f'class_{i}' for i in range(scores.shape[1])]
        if len(self.classes) != scores.shape[1]:
            from rock_plugin.utils.text import printable
            names = printable(', '.join(self.classes[:5]), one_line=True)
            raise ValueError(
                f'the model gives {scores.shape[1]} scores but there are '
                f'{len(self.classes)} class names ({names}...)')
        finite = np.isfinite(scores).all(axis=1)
        if not finite.all():
            raise ValueError(
                f'{batch[int(np.argmin(finite))][0]}: the model gave NaN/inf '
                'scores; the checkpoint is broken (did training diverge?)')
        for i, ((name, _), row) in enumerate(zip(batch, scores)):
            order = np.argsort(-row, kind='stable')  # ties: lower index first
            top = [(self.classes[i], float(row[i]))
                   for i in order[:self.topk]]
            result = dict(file=name, pred_label=int(order[0]),
                          pred_class=top[0][0], pred_score=top[0][1],
                          topk=top, scores={c: float(s) for c, s in
                                            zip(self.classes, row)})
            if extras:
                result.update(self._open_set_result(extras, i))
            result['answer'] = UNKNOWN_LABEL if result.get('unknown') \
                else result['pred_class']
            yield result

    @property
    def novelty_threshold(self) -> Optional[float]:
        """The novelty threshold in force: :attr:`unknown_threshold`, else
        the model's; None for a model without a feature bank."""
        if self.unknown_threshold is not None:
            return float(self.unknown_threshold)
        return (self.open_set or {}).get('threshold')

    def _open_set_result(self, extras: Dict[str, np.ndarray], i: int
                         ) -> Dict[str, Any]:
        """``novelty``, ``unknown`` and ``neighbors`` (file, class and
        cosine similarity of the nearest training images) of image ``i``."""
        info = self.open_set or {}
        threshold = self.novelty_threshold
        novelty = float(extras['novelty'][i])
        files, labels = info.get('bank_files'), info.get('bank_labels')
        neighbors = []
        for idx, sim in zip(extras['neighbors'][i].tolist(),
                            extras['neighbor_sims'][i].tolist()):
            label = labels[idx] if labels is not None and \
                idx < len(labels) else None
            neighbors.append(dict(
                file=files[idx] if files and idx < len(files) else None,
                label=label, similarity=float(sim),
                **{'class': self.classes[label] if label is not None and
                   label < len(self.classes) else None}))
        return dict(novelty=novelty, unknown=bool(
            threshold is not None and novelty > threshold),
            neighbors=neighbors)

    def _forward_pytorch(self, samples: List[dict], full: bool = False):
        import torch
        from mmengine.dataset import pseudo_collate
        # test_step: the data preprocessor then predict, as in testing.
        # inference_mode: ~8% faster than no_grad on CPU for B4.
        with torch.inference_mode():
            preds = self.model.test_step(pseudo_collate(samples))
        scores = torch.stack([p.pred_score.float() for p in preds]
                             ).cpu().numpy()
        if not full:
            return scores
        extras = {}
        if preds and 'novelty' in preds[0]:
            extras = {key: torch.stack([torch.as_tensor(p.get(key))
                                        for p in preds]).cpu().numpy()
                      for key in ('novelty', 'neighbors', 'neighbor_sims')}
        return scores, extras

    def _forward_onnx(self, samples: List[dict], full: bool = False):
        batch = onnx_input(samples)
        expected = self.session.get_inputs()[0].shape
        if list(batch.shape[1:]) != list(expected[1:]):
            raise ValueError(
                f'the config\'s test pipeline gives {tuple(batch.shape[1:])} '
                f'images but the ONNX model takes {tuple(expected[1:])}: '
                'export it again with this config (or with a shape that '
                'matches)')
        outputs = self.session.run(None, {ONNX_INPUT_NAME: batch})
        if not full:
            return outputs[0]
        names = [o.name for o in self.session.get_outputs()]
        extras = {k: v for k, v in zip(names, outputs)
                  if k in ('novelty', 'neighbors', 'neighbor_sims')}
        return outputs[0], extras if len(extras) == 3 else {}

    def input_size(self) -> Tuple[int, int]:
        """The ``(H, W)`` the test pipeline gives, from two dummy images
        (``ValueError`` when it depends on the image)."""
        sizes = {tuple(self.load(('dummy', np.zeros(shape, np.uint8)))[1]
                       ['inputs'].shape[-2:])
                 for shape in ((512, 640, 3), (600, 400, 3))}
        if len(sizes) != 1:
            raise ValueError('the test pipeline gives images of varying size '
                             f'{sorted(sizes)}; give a fixed shape (H, W)')
        return sizes.pop()


def onnx_input(samples: Sequence[dict]) -> np.ndarray:
    """Packed samples (``3 x H x W`` BGR) as the exported model's input:
    ``N x 3 x H x W`` float32 RGB, 0-255."""
    batch = np.stack([s['inputs'].numpy() for s in samples])
    return np.ascontiguousarray(batch[:, ::-1], dtype=np.float32)


def _classes_from_checkpoint(ckpt: Optional[dict], path: str = 'checkpoint'
                             ) -> Optional[List[str]]:
    # A checkpoint is data too: its names must be a list of strings.
    from .onnx_metadata import check_classes
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    meta = meta if isinstance(meta, dict) else {}
    dataset_meta = meta.get('dataset_meta')
    for key, classes in (
            ('meta.dataset_meta.classes', dataset_meta.get('classes')
             if isinstance(dataset_meta, dict) else None),
            ('meta.CLASSES', meta.get('CLASSES'))):  # mmcls 0.x
        if classes is not None and not (isinstance(classes, (list, tuple))
                                        and not classes):
            return check_classes(classes, path, key)
    return None


def _bank_files_from_checkpoint(ckpt: Optional[dict], path: str
                                ) -> Optional[List[str]]:
    # Data: the evidence's file names, shown and opened, never run.
    meta = ckpt.get('meta') if isinstance(ckpt, dict) else None
    files = meta.get('feature_bank_files') if isinstance(meta, dict) \
        else None
    if files is None:
        return None
    if not isinstance(files, list) or not all(
            isinstance(f, str) and len(f) < 4096 for f in files):
        from rock_plugin.utils.errors import DataError
        raise DataError('meta.feature_bank_files must be a list of file '
                        'names', path)
    return files


def _open_set_of_head(model, bank_files: Optional[List[str]]
                      ) -> Optional[Dict[str, Any]]:
    head = getattr(model, 'head', None)
    if not getattr(head, 'has_bank', False):
        return None
    labels = head.bank_labels.tolist()
    if bank_files is not None and len(bank_files) != len(labels):
        bank_files = None  # another run's list: show classes only
    return dict(threshold=head.threshold, bank_files=bank_files,
                bank_labels=labels,
                temperature=float(head.temperature))


def _classes_from_config(cfg) -> Optional[List[str]]:
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = dataset.get('classes')
    if isinstance(classes, (list, tuple)):
        return list(classes)
    if isinstance(classes, str):
        path = osp.join(dataset.get('data_root', ''), classes)
        if osp.isfile(path):
            from rock_plugin.datasets.annotations import load_classes
            return list(load_classes(path))
    from mmpretrain.registry import DATASETS
    dataset_class = DATASETS.get(dataset.get('type', ''))
    classes = getattr(dataset_class, 'METAINFO', {}).get('classes')
    return list(classes) if classes else None


def video_frames(path: str, every_n: int = 10
                 ) -> Tuple[int, Iterator[Tuple[str, np.ndarray]]]:
    """Open a video to read frames ``0, N, 2N, ...`` (``N = every_n``; the
    others are only grabbed, not decoded). Returns the container's frame
    count (0 when unknown) and a generator of ``('<path>#frame=<index>',
    BGR frame)``."""
    import cv2
    if every_n < 1:
        raise ValueError(f'every_n must be at least 1, got {every_n}')
    if not osp.isfile(path):
        raise ImageNotFoundError(path)
    capture = cv2.VideoCapture(path)
    if not capture.isOpened():
        raise ImageReadError(path, 'cannot open the video (not a video, or '
                             'a codec OpenCV cannot decode)')
    count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT) or 0))

    def frames():
        index = kept = 0
        try:
            while True:
                if index % every_n == 0:
                    ok, frame = capture.read()
                    if not ok or frame is None:
                        break
                    kept += 1
                    yield f'{path}#frame={index}', frame
                elif not capture.grab():
                    break
                index += 1
        finally:
            capture.release()
        if kept == 0:
            raise ImageReadError(path, 'no frame could be decoded from the '
                                 'video (empty or corrupt)')

    return count, frames()


def write_predictions(path: str, results: Sequence[Dict[str, Any]],
                      classes: Sequence[str],
                      errors: Sequence[Tuple[str, str]] = (),
                      info: Optional[Dict[str, Any]] = None) -> None:
    """Write :class:`RockInferencer` ``results`` to ``path`` by its
    extension: ``.csv``, a row per result (``file``, ``pred_label``,
    ``pred_class``, ``pred_score``, ``topk``, ``answer``, ``novelty``,
    ``unknown``, ``neighbor1..3`` as ``class:similarity:file``, then a
    ``score/<class>`` column per name in ``classes``; the open-set cells
    are empty for a model without a feature bank); or ``.json``, ``info``
    (run details) plus ``classes``, ``count``, ``predictions`` and
    ``errors`` (``(file, message)`` of the inputs that could not be
    read)."""
    from rock_plugin.utils.atomic_io import (atomic_write_csv,
                                             atomic_write_json)
    ext = osp.splitext(path)[1].lower()
    if ext == '.csv':
        # The same columns with or without a feature bank: scripts that
        # read them keep working when the model changes.
        hood = max([3] + [len(r.get('neighbors') or ()) for r in results])
        header = ['file', 'pred_label', 'pred_class', 'pred_score', 'topk',
                  'answer', 'novelty', 'unknown'] + [
            f'neighbor{i}' for i in range(1, hood + 1)]
        atomic_write_csv(path, [header + [f'score/{c}' for c in classes]] + [
            [r['file'], r['pred_label'], r['pred_class'],
             f'{r["pred_score"]:.6g}',
             ';'.join(f'{c}:{s:.6g}' for c, s in r['topk'])] +
            _open_set_cells(r, hood) +
            [f'{r["scores"][c]:.6g}' for c in classes] for r in results])
    elif ext == '.json':
        doc = dict(info or {}, classes=list(classes),
                   count=dict(predicted=len(results), failed=len(errors)),
                   predictions=[dict(r, topk=[list(t) for t in r['topk']])
                                for r in results],
                   errors=[dict(file=f, error=e) for f, e in errors])
        atomic_write_json(path, doc, indent=1)
    else:
        raise ValueError(f'{path}: a predictions file must end in .csv or '
                         '.json')


def _open_set_cells(result: Dict[str, Any], hood: int) -> List[str]:
    # answer, novelty, unknown, then class:similarity:file per neighbour.
    novelty = result.get('novelty')
    cells = [result.get('answer', result['pred_class']),
             '' if novelty is None else f'{novelty:.6g}',
             '' if novelty is None else str(bool(result.get('unknown')))]
    near = list(result.get('neighbors') or ())
    cells += [f'{n.get("class") or ""}:{n["similarity"]:.4f}:'
              f'{n.get("file") or ""}' for n in near]
    return cells + [''] * (hood - len(near))
