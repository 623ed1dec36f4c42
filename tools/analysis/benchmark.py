"""Speed of our trainer and predictor against stock mmpretrain, as run.

``python tools/analysis/benchmark.py`` trains the frozen EfficientNet-B4 recipe
(380 px, batch 4, SGD) for full epochs on all the bundled images
(``demo/rock_thin_sections``, a stratified 20 % validation fold) with

* stock: mmpretrain's own ``efficientnet-b4_8xb32_in1k.py`` with only the
  dataset, head, batch and lr changed (``CustomDataset``,
  ``LoadImageFromFile``, ``ImageClassifier``, ``EfficientNet(frozen_stages=7,
  norm_eval=True)``, ``ValLoop``), and
* ours: ``configs/rock_b4.py`` as shipped,

then predicts every image with mmpretrain's ``ImageClassificationInferencer``
and with ``RockInferencer`` (batch 8, ``tools/predict.py``'s default). The
pair is repeated (``--repeats``, interleaved, alternating which goes first);
every run is its own process, and the stock ones never import
``rock_plugin``. Without ``--pretrained`` both start from the same random
backbone weights with BN statistics measured on the images (speed does not
depend on the weights; nothing is downloaded). The output ends with::

    epoch speedup: <median>x (min <a>x, max <b>x)
    predict speedup: <median>x (min <a>x, max <b>x)

An epoch is train + validation + hooks and checkpoints, epochs 2..N (epoch 1
builds caches and exports; it is shown apart). ``--engines`` instead times
the frozen backbone alone on every engine of
:mod:`rock_plugin.models.accel.frozen_engine`; ``--tiny`` is a seconds-long run
(EfficientNet-B0 at 32 px, 4 images a class) for tests.
"""
import argparse
import multiprocessing
import os
import os.path as osp
import statistics
import sys
import time
import traceback
from queue import Empty

# Run as ``python tools/analysis/x.py``: tools/ holds _common.
sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))
from _common import (REPO, add_common_args, end_loader_workers, run,
                     setup_env)

BUNDLED = osp.join(REPO, 'demo', 'rock_thin_sections')
SHARED = osp.join(REPO, '..', 'shared', 'data', 'rock_thin_sections')
STOCK = 'mmpretrain::efficientnet/efficientnet-b4_8xb32_in1k.py'
RECIPES = dict(b4=dict(arch='b4', size=380, channels=1792),
               tiny=dict(arch='b0', size=32, channels=1280, crop_padding=4))


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Benchmark our trainer and predictor against stock '
        'mmpretrain on the same machine, data, model and settings.')
    parser.add_argument('--data-root', help='folder per class (default: the '
                        'bundled demo/rock_thin_sections, else ../shared/'
                        'data/rock_thin_sections)')
    parser.add_argument('--epochs', type=int, default=3,
                        help='epochs per training run (default 3; epochs '
                        '2..N are averaged)')
    parser.add_argument('--repeats', type=int, default=3,
                        help='stock/ours pairs, interleaved (default 3)')
    parser.add_argument('--batch-size', type=int, default=None,
                        help='training and predict batch of both (default: '
                        "the recipe's 4 to train, predict.py's 8 to predict)")
    parser.add_argument('--amp', action='store_true',
                        help='mixed precision for both (CUDA only)')
    parser.add_argument('--num-workers', type=int, default=None,
                        help='data-loader workers of both, train and val '
                        "(default: each config's own: stock 5, ours 4/2)")
    parser.add_argument('--data-repeat', type=int, default=1,
                        help='list every image N times in the training, '
                        'validation and predict sets (longer epochs for a '
                        'fast GPU; default 1)')
    parser.add_argument('--engine', default=None,
                        help='our frozen-backbone engine '
                        '(model.frozen_engine: eager, onnxruntime, compile, '
                        'bf16; default: the '
                        "config's, the fastest exact one)")
    parser.add_argument('--pretrained', help='EfficientNet-B4 ImageNet .pth '
                        'for both (default: the same random weights, BN '
                        'statistics measured on the images)')
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--only', choices=['ours', 'stock'],
                        help='one run of that trainer alone (no pairs): the '
                        'whole-recipe wall time, e.g. --only ours --epochs '
                        '100')
    for flag, text in (
            ('--engines', 'only time the frozen backbone on each engine'),
            ('--tiny', 'seconds-long run: B0 at 32 px, 4 images a class')):
        parser.add_argument(flag, action='store_true', help=text)
    parser.add_argument('--work-dir', default=None,
                        help='scratch folder (default: work_dirs/benchmark)')
    parser.add_argument('--out', help='also write the results as JSON here')
    parser.add_argument('--timeout', type=int, default=3600,
                        help='seconds per run (default 3600)')
    add_common_args(parser, device='cpu', distributed=False,
                    cfg_options=False)
    args = parser.parse_args(argv)
    if args.epochs < 2 or args.repeats < 1:
        raise ValueError('--epochs must be at least 2 (epoch 1 builds the '
                         'caches; epochs 2..N are averaged) and --repeats '
                         'at least 1')
    if args.amp and not str(args.device).startswith('cuda'):
        raise ValueError('--amp is for --device cuda (stock AmpOptimWrapper '
                         'needs CUDA)')
    if args.data_repeat < 1 or (args.batch_size or 1) < 1:
        raise ValueError('--data-repeat and --batch-size must be at least 1')
    if args.data_root is None:
        args.data_root = BUNDLED if osp.isdir(BUNDLED) else SHARED
    if not osp.isdir(args.data_root):
        raise FileNotFoundError(f'{args.data_root}: data folder not found '
                                '(give --data-root, a folder per class)')
    return args


# -- data and configs (main process / children) ------------------------------
def split_data(root: str, work: str, per_class=None, repeat=1) -> dict:
    """The validation fold ``tools/train.py --split-validation --fold 0``
    makes, written as annotation files both trainers read (each line
    ``repeat`` times)."""
    from rock_plugin.datasets import stratified_fold_split
    from rock_plugin.utils.image_files import scan_class_folders
    classes, samples = scan_class_folders(root)
    if per_class:
        samples = [s for label in range(len(classes))
                   for s in [s for s in samples if s[1] == label][:per_class]]
    train, val = stratified_fold_split([s[1] for s in samples], 0.2, 0, 0)
    os.makedirs(work, exist_ok=True)
    data = dict(classes=classes, images=[osp.abspath(osp.join(root, p))
                                         for p, _ in samples])
    for name, idx in (('train', train), ('val', val)):
        data[name] = osp.join(work, f'{name}.txt')
        with open(data[name], 'w', encoding='utf-8') as f:
            f.writelines(f'{data["images"][i]} {samples[i][1]}\n'
                         for i in idx for _ in range(repeat))
        data[f'n_{name}'] = len(idx) * repeat
    data['images'] = data['images'] * repeat
    data['classes_file'] = osp.join(work, 'classes.txt')
    with open(data['classes_file'], 'w', encoding='utf-8') as f:
        f.writelines(c + '\n' for c in classes)
    return data


def build_config(spec: dict):
    """The stock or our config on the benchmark's data and recipe."""
    from mmengine.config import Config
    from mmengine.hub import get_config
    recipe, data = RECIPES[spec['recipe']], spec['data']
    n = len(data['classes'])
    if spec['role'] == 'stock':
        cfg = get_config(STOCK)
        # the stock way to freeze all of EfficientNet with frozen BN
        cfg.model.backbone.update(frozen_stages=7, norm_eval=True)
        cfg.optim_wrapper.optimizer.lr = 0.1 * 4 / 256  # the recipe's
        if spec.get('amp'):
            cfg.optim_wrapper.update(type='AmpOptimWrapper',
                                     loss_scale='dynamic')
        for key, ann in (('train_dataloader', 'train'),
                         ('val_dataloader', 'val')):
            cfg[key].dataset = dict(
                type='CustomDataset', ann_file=data[ann], data_prefix='',
                classes=data['classes'],
                pipeline=cfg[key].dataset.pipeline)
        cfg.val_evaluator = dict(type='Accuracy', topk=(1, min(5, n)))
    else:
        cfg = Config.fromfile(osp.join(REPO, 'configs', 'rock_b4.py'))
        for key, ann in (('train_dataloader', 'train'),
                         ('val_dataloader', 'val')):
            cfg[key].dataset.update(data_root='', ann_file=data[ann],
                                    classes=data['classes_file'])
        cfg.val_evaluator.topk = (1, min(5, n))
        if spec.get('engine'):
            cfg.model.frozen_engine = spec['engine']
        if spec.get('amp'):
            from _config_flags import set_amp
            set_amp(cfg, spec['device'])
    cfg.test_dataloader = cfg.val_dataloader
    cfg.test_evaluator = cfg.val_evaluator
    cfg.model.backbone.arch = recipe['arch']
    cfg.model.backbone.init_cfg = dict(
        type='Pretrained', checkpoint=spec['pretrained'],
        prefix='backbone') if spec.get('pretrained') else None
    cfg.model.head.update(num_classes=n, in_channels=recipe['channels'],
                          topk=(1, min(5, n)))
    cfg.data_preprocessor.num_classes = n
    for key in ('train_dataloader', 'val_dataloader'):
        cfg[key].batch_size = spec.get('batch_size') or 4
        if spec.get('num_workers') is not None:
            cfg[key].num_workers = spec['num_workers']
            cfg[key].persistent_workers = cfg[key].get(
                'persistent_workers', False) and spec['num_workers'] > 0
        if str(spec['device']).startswith('cuda'):
            cfg[key].pin_memory = True
        for step in cfg[key].dataset.pipeline:
            if step['type'] == 'EfficientNetRandomCrop':
                step['scale'] = recipe['size']
            if step['type'] == 'EfficientNetCenterCrop':
                step['crop_size'] = recipe['size']
            if 'crop_padding' in recipe and 'EfficientNet' in step['type']:
                step['crop_padding'] = recipe['crop_padding']
    cfg.train_cfg.max_epochs = spec['epochs']
    cfg.work_dir = spec['work_dir']
    cfg.randomness = dict(seed=spec['seed'], deterministic=False)
    cfg.launcher = 'none'
    return cfg


# -- what a child process measures -------------------------------------------
def _peak_rss_mib() -> dict:
    import resource
    return dict(
        main=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        worker=resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)


def _epoch_clock():
    from mmengine.hooks import Hook

    class EpochClock(Hook):
        """Start times of the epochs, and the images each one trained."""
        priority = 'HIGHEST'

        def __init__(self):
            self.starts, self.train_s, self.images = [], [], []
            self.metrics = {}

        def before_train_epoch(self, runner):
            self.starts.append(time.perf_counter())
            self.images.append(0)

        def after_train_epoch(self, runner):
            self.train_s.append(time.perf_counter() - self.starts[-1])

        def after_train_iter(self, runner, batch_idx, data_batch=None,
                             outputs=None):
            self.images[-1] += len(data_batch['data_samples'])

        def after_val_epoch(self, runner, metrics=None):
            self.metrics = {k: float(v) for k, v in (metrics or {}).items()
                            if isinstance(v, (int, float))}

    return EpochClock()


def train_and_predict(spec: dict) -> dict:
    """Train one role, then predict every image with the given weights."""
    import gc

    import torch
    if spec['role'] == 'stock':
        from mmengine.runner import Runner
        build = Runner.from_cfg
    else:
        import rock_plugin  # noqa: F401
        from rock_plugin.apis.train import build_runner as build
    cfg = build_config(spec)
    runner = build(cfg)
    clock = _epoch_clock()
    runner.register_hook(clock)
    runner.train()
    end = time.perf_counter()
    model = runner.model
    out = dict(epoch_s=[b - a for a, b in zip(clock.starts,
                                               clock.starts[1:] + [end])],
               train_s=clock.train_s, train_images=clock.images,
               metrics=clock.metrics,
               model=type(model).__name__,
               val_loop=type(runner.val_loop).__name__)
    if spec.get('save'):
        torch.save({'state_dict': model.state_dict(), 'meta': {
            'dataset_meta': {'classes': spec['data']['classes']}}},
            spec['save'])
    end_loader_workers(runner)
    del runner, model
    gc.collect()  # persistent workers exit and count in the RSS
    out.update(predict(spec, cfg))
    out['peak_rss_mib'] = _peak_rss_mib()
    return out


def predict(spec: dict, cfg) -> dict:
    """Images/s of the stock or our inferencer on every image."""
    import torch
    images, ckpt = spec['data']['images'], spec['checkpoint']
    batch = spec.get('batch_size') or 8
    start = time.perf_counter()
    if spec['role'] == 'stock':
        from mmpretrain.apis import ImageClassificationInferencer
        inferencer = ImageClassificationInferencer(cfg, pretrained=ckpt,
                                                   device=spec['device'])

        def infer(paths):
            return [r['pred_scores'] for r in inferencer(paths,
                                                         batch_size=batch)]
    else:
        from rock_plugin.apis.inferencer import RockInferencer
        inferencer = RockInferencer(cfg, ckpt, device=spec['device'],
                                    batch_size=batch)

        def infer(paths):
            return [list(r['scores'].values()) for r in inferencer(paths)]
    infer(images[:batch])  # warm-up: lazy builds, the engine's export
    first = time.perf_counter() - start
    start = time.perf_counter()
    scores = infer(images)
    seconds = time.perf_counter() - start
    scores = torch.tensor([[float(s) for s in row] for row in scores])
    # ours divides the logits by the head's fitted temperature (stock's
    # LinearClsHead ignores that buffer): kept to compare at T = 1
    head = getattr(getattr(inferencer, 'model', None), 'head', None)
    temperature = float(getattr(head, 'temperature', 1.0))
    return dict(predict_ips=len(images) / seconds, predict_startup_s=first,
                scores=scores.tolist(), temperature=temperature)


def make_weights(spec: dict) -> dict:
    """Random backbone weights (seeded) with BN statistics measured on
    training crops of 32 of the images: features that vary with the image,
    where default BN statistics give every image the same prediction. Each
    BN variance is floored at its layer's median: a random EfficientNet
    otherwise blows some crops up to features of 1e4 and the loss with them.
    """
    import torch
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')
    cfg = build_config(dict(spec, role='stock'))
    torch.manual_seed(spec['seed'])
    backbone = MODELS.build(dict(type='EfficientNet',
                                 arch=RECIPES[spec['recipe']]['arch']))
    norm = MODELS.build(dict(cfg.data_preprocessor,
                             type='ClsDataPreprocessor'))
    pipeline = Compose(cfg.train_dataloader.dataset.pipeline)
    for m in backbone.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.reset_running_stats()
            m.momentum = None  # a cumulative average over the batches
    images = spec['data']['images']
    images = images[::max(1, len(images) // 32)][:32]
    backbone.train()
    with torch.no_grad():
        for i in range(0, len(images), 4):
            batch = pseudo_collate([pipeline(dict(img_path=p))
                                    for p in images[i:i + 4]])
            backbone(norm(batch, False)['inputs'])
    for m in backbone.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_var.clamp_(min=m.running_var.median().item())
    torch.save({'state_dict': {'backbone.' + k: v for k, v in
                               backbone.state_dict().items()}},
               spec['pretrained'])
    return {}


def time_engines(spec: dict) -> dict:
    """Images/s of the frozen backbone alone on every engine, on a batch of
    4 validation crops."""
    import torch
    from mmengine.dataset import Compose, pseudo_collate
    from mmengine.registry import init_default_scope

    import rock_plugin  # noqa: F401
    from mmpretrain.registry import MODELS
    from rock_plugin.models.accel import ENGINES, FrozenEngine
    init_default_scope('mmpretrain')
    cfg = build_config(dict(spec, role='ours'))
    model = MODELS.build(dict(cfg.model,
                              data_preprocessor=cfg.data_preprocessor))
    model.init_weights()
    backbone = model.backbone
    backbone.eval()
    pipeline = Compose(cfg.val_dataloader.dataset.pipeline)
    images = spec['data']['images']
    x = model.data_preprocessor(pseudo_collate([
        pipeline(dict(img_path=p))
        for p in images[::max(1, len(images) // 4)][:4]]), False)['inputs']
    reps = spec['engine_reps']
    with torch.no_grad():
        ref = backbone(x)[-1]
        rows = []
        for engine in ('plain', ) + ENGINES:
            for micro in {'plain': (4, ), 'eager': (1, 2, 4),
                          'onnxruntime': (1, 2, 4)}.get(engine, (1, 4)):
                start = time.perf_counter()
                run_ = backbone if engine == 'plain' else FrozenEngine(
                    backbone, engine, micro_batch=micro)
                out = run_(x)[-1]  # first call: export / compile
                ready = time.perf_counter() - start
                start, cpu = time.perf_counter(), time.process_time()
                for _ in range(reps):
                    run_(x)
                ips = 4 * reps / (time.perf_counter() - start)
                # CPU seconds of all this process's threads: steadier than
                # wall time on a machine shared with other work
                cpu_ms = (time.process_time() - cpu) / (4 * reps) * 1000
                err = ((out - ref).abs().max() / ref.abs().max()).item()
                rows.append(dict(engine=engine, micro_batch=micro, ips=ips,
                                 cpu_ms=cpu_ms, first_call_s=ready,
                                 max_rel_error=err))
    return dict(rows=rows)


def _child(fn_name, spec, log, queue):
    # C-level output too (oneDNN, ORT, the dataloader workers) goes to log
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    try:
        queue.put(('ok', globals()[fn_name](spec)))
    except BaseException:
        queue.put(('error', traceback.format_exc()))


def in_child(fn_name: str, spec: dict, timeout: int) -> dict:
    """``fn_name(spec)`` in a fresh process (``spawn``: nothing inherited)."""
    ctx = multiprocessing.get_context('spawn')
    queue = ctx.Queue()
    log = osp.join(spec['work_dir'] + '.log')
    os.makedirs(spec['work_dir'], exist_ok=True)
    proc = ctx.Process(target=_child, args=(fn_name, spec, log, queue))
    proc.start()
    deadline = time.monotonic() + timeout
    while True:
        try:
            status, result = queue.get(timeout=5)
            break
        except Empty:
            if not proc.is_alive() or time.monotonic() > deadline:
                status, result = 'error', (
                    f'exit code {proc.exitcode}' if not proc.is_alive()
                    else f'no result in {timeout} s (--timeout)')
                break
    proc.join(60)
    if proc.is_alive():
        proc.kill()
    if status != 'ok':
        with open(log, encoding='utf-8', errors='replace') as f:
            tail = f.read()[-2500:]
        raise RuntimeError(f'{osp.basename(spec["work_dir"])} failed; log '
                           f'{log}:\n{tail}\n{result}')
    return result


# -- main process ------------------------------------------------------------
def _spread(values) -> str:
    return (f'{statistics.median(values):.2f}x (min {min(values):.2f}x, '
            f'max {max(values):.2f}x)')


def benchmark(args) -> dict:
    work = osp.abspath(args.work_dir or osp.join(
        'work_dirs', 'benchmark_tiny' if args.tiny else 'benchmark'))
    data = split_data(args.data_root, osp.join(work, 'data'),
                      4 if args.tiny else None, args.data_repeat)
    base = dict(data=data, device=args.device, epochs=args.epochs,
                seed=args.seed, pretrained=args.pretrained,
                recipe='tiny' if args.tiny else 'b4', engine=args.engine,
                checkpoint=osp.join(work, 'weights.pth'), engine_reps=3,
                batch_size=args.batch_size, amp=args.amp,
                num_workers=args.num_workers)
    if not args.pretrained:
        base['pretrained'] = osp.join(work, 'random_backbone.pth')
        in_child('make_weights', dict(base, work_dir=osp.join(
            work, 'make_weights')), args.timeout)
    load = os.getloadavg()[0]
    res = dict(data_root=osp.abspath(args.data_root), recipe=base['recipe'],
               n_train=data['n_train'], n_val=data['n_val'],
               images=len(data['images']), epochs=args.epochs,
               cpus=os.cpu_count(), load_before=load, runs=[])
    print(f'[benchmark] {data["n_train"]} train / {data["n_val"]} val images '
          f'of {args.data_root}, {args.epochs} epochs, '
          f'{args.only or "ours+stock"} x{1 if args.only else args.repeats}; '
          f'1-min load {load:.1f} on {os.cpu_count()} CPUs', flush=True)
    if args.engines:
        res['engines'] = in_child('time_engines', dict(
            base, work_dir=osp.join(work, 'engines'),
            engine_reps=2 if args.tiny else 5), args.timeout)['rows']
        res['load_after'] = os.getloadavg()[0]
        return res
    if args.only:
        start = time.perf_counter()
        res['only'] = in_child('train_and_predict', dict(
            base, role=args.only, work_dir=osp.join(work, args.only),
            save=base['checkpoint']),
            args.timeout)
        res['only'].update(role=args.only,
                           wall_s=time.perf_counter() - start)
        res['load_after'] = os.getloadavg()[0]
        return res
    for rep in range(args.repeats):
        pair = {}
        # ours goes first in the first pair: its weights are the ones both
        # inferencers load; then the order alternates
        for role in (('ours', 'stock') if rep % 2 == 0 else
                     ('stock', 'ours')):
            name = f'{role}_{rep + 1}'
            print(f'[benchmark] {name} ...', flush=True)
            start = time.perf_counter()
            pair[role] = in_child('train_and_predict', dict(
                base, role=role, work_dir=osp.join(work, name),
                save=base['checkpoint'] if name == 'ours_1' else None),
                args.timeout)
            print(f'[benchmark] {name} done in '
                  f'{time.perf_counter() - start:.0f} s', flush=True)
        res['runs'].append(pair)
    res['load_after'] = os.getloadavg()[0]
    return res


def summarize(res: dict) -> str:
    lines = []
    add = lines.append
    add(f'rock_plugin benchmark: {res["recipe"]} recipe, '
        f'{res["n_train"]} train + {res["n_val"]} val images '
        f'({res["data_root"]}), {res["cpus"]} CPUs, 1-min load '
        f'{res["load_before"]:.1f} before / '
        f'{res.get("load_after", float("nan")):.1f} after')
    if 'engines' in res:
        add(f'{"frozen backbone engine":24s}{"micro-batch":>12s}'
            f'{"images/s":>10s}{"vs plain":>10s}{"CPU ms/img":>11s}'
            f'{"vs plain":>10s}{"1st call s":>11s}{"max rel err":>12s}')
        plain = res['engines'][0]
        for r in res['engines']:
            add(f'{r["engine"]:24s}{r["micro_batch"]:>12d}{r["ips"]:>10.2f}'
                f'{r["ips"] / plain["ips"]:>9.2f}x{r["cpu_ms"]:>11.0f}'
                f'{plain["cpu_ms"] / r["cpu_ms"]:>9.2f}x'
                f'{r["first_call_s"]:>11.1f}{r["max_rel_error"]:>12.1e}')
        return '\n'.join(lines)
    if 'only' in res:
        r = res['only']
        add(f'{r["role"]} alone: {len(r["epoch_s"])} epochs (train + val + '
            f'hooks) in {sum(r["epoch_s"]) / 60:.1f} min; epoch 1 '
            f'{r["epoch_s"][0]:.1f} s, epochs 2..N median '
            f'{statistics.median(r["epoch_s"][1:]):.1f} s (min '
            f'{min(r["epoch_s"][1:]):.1f}, max {max(r["epoch_s"][1:]):.1f})')
        add(f'whole process (build, train, predict {len(r["scores"])} '
            f'images): {r["wall_s"] / 60:.1f} min; final val top-1 '
            f'{r["metrics"].get("accuracy/top1", float("nan")):.1f} %')
        return '\n'.join(lines)
    add(f'{"pair":6s}{"epoch s stock":>14s}{"ours":>8s}{"speedup":>9s}'
        f'{"predict img/s stock":>21s}{"ours":>8s}{"speedup":>9s}'
        f'{"epoch 1 s stock/ours":>22s}')
    epoch_x, predict_x = [], []
    for i, pair in enumerate(res['runs'], 1):
        s, o = pair['stock'], pair['ours']
        es, eo = (statistics.mean(r['epoch_s'][1:]) for r in (s, o))
        epoch_x.append(es / eo)
        predict_x.append(o['predict_ips'] / s['predict_ips'])
        add(f'{i:<6d}{es:>14.1f}{eo:>8.1f}{epoch_x[-1]:>8.2f}x'
            f'{s["predict_ips"]:>21.2f}{o["predict_ips"]:>8.2f}'
            f'{predict_x[-1]:>8.2f}x{s["epoch_s"][0]:>14.1f} /'
            f'{o["epoch_s"][0]:>6.1f}')
    s, o = res['runs'][0]['stock'], res['runs'][0]['ours']
    import numpy as np
    a, b = np.array(s['scores']), np.array(o['scores'])
    add(f'stock: {s["model"]} + {s["val_loop"]}; ours: {o["model"]} + '
        f'{o["val_loop"]}; images per epoch {s["train_images"][0]} / '
        f'{o["train_images"][0]}')
    # softmax(T log p) undoes ours' softmax(logits / T): the scores stock
    # gives for ours' logits, so a feature or logit mismatch shows at T = 1
    t = o.get('temperature', 1.0)
    b1 = np.clip(b, 1e-300, None) ** t
    b1 /= b1.sum(1, keepdims=True)
    add(f'same weights, every image: stock and ours predict the same labels: '
        f'{bool((a.argmax(1) == b.argmax(1)).all())}, max |score diff| '
        f'{np.abs(a - b).max():.1e} (ours at its fitted temperature '
        f'{t:.3g}), {np.abs(a - b1).max():.1e} at T = 1')
    add(f'val top-1 after {res["epochs"]} epochs, pair 1: stock '
        f'{s["metrics"].get("accuracy/top1", float("nan")):.1f} %, ours '
        f'{o["metrics"].get("accuracy/top1", float("nan")):.1f} %')
    add(f'peak RSS MiB (main / largest worker): stock '
        f'{s["peak_rss_mib"]["main"]:.0f} / {s["peak_rss_mib"]["worker"]:.0f}'
        f', ours {o["peak_rss_mib"]["main"]:.0f} / '
        f'{o["peak_rss_mib"]["worker"]:.0f}')
    ips = {role: statistics.median(
        sum(p[role]['train_images'][1:]) / sum(p[role]['train_s'][1:])
        for p in res['runs']) for role in ('stock', 'ours')}
    add(f'training images/s (train phase, epochs 2..N, median): stock '
        f'{ips["stock"]:.1f}, ours {ips["ours"]:.1f}')
    steady = [statistics.mean(p['ours']['epoch_s'][1:]) for p in res['runs']]
    first = [p['ours']['epoch_s'][0] for p in res['runs']]
    ours_100 = statistics.median(first) + 99 * statistics.median(steady)
    stock_100 = 100 * statistics.median(
        [statistics.mean(p['stock']['epoch_s']) for p in res['runs']])
    add(f'100 epochs projected from these runs: stock {stock_100 / 60:.0f} '
        f'min, ours {ours_100 / 60:.0f} min')
    add(f'epoch speedup: {_spread(epoch_x)}')
    add(f'predict speedup: {_spread(predict_x)}')
    return '\n'.join(lines)


def main(argv=None):
    args = parse_args(argv)
    setup_env(args)
    res = benchmark(args)
    res['report'] = summarize(res)
    print(res['report'])
    if args.out:
        from rock_plugin.utils.atomic_io import atomic_write_json
        atomic_write_json(args.out, res, indent=1)
    return res


if __name__ == '__main__':
    run(main)
