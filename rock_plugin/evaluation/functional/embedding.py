"""2-D maps of feature vectors (``tools/test.py --embedding``): sklearn's
t-SNE, or UMAP when ``umap-learn`` is installed (not a dependency)."""
import numpy as np

#: sklearn's default perplexity, kept for sets of 90 images and more.
PERPLEXITY = 30.0


def adapted_perplexity(n_points: int,
                       perplexity: float = PERPLEXITY) -> float:
    """``perplexity``, lowered to ``(n_points - 1) / 3`` for a small set:
    t-SNE sizes each point's neighbourhood at about 3 x perplexity points,
    and sklearn refuses a perplexity of ``n_points`` or more.

    Example:
        >>> adapted_perplexity(1000), adapted_perplexity(46)
        (30.0, 15.0)
    """
    return float(min(perplexity, max((n_points - 1) / 3, 0.5)))


def embed_2d(features: np.ndarray, method: str = 'tsne', seed: int = 0,
             perplexity: float = PERPLEXITY) -> np.ndarray:
    """Map ``(N, D)`` features to ``(N, 2)`` points.

    Args:
        features (np.ndarray): One row per image.
        method (str): ``'tsne'`` (:class:`sklearn.manifold.TSNE`, the
            perplexity from :func:`adapted_perplexity`) or ``'umap'``
            (``umap-learn``; ImportError naming it when missing).
        seed (int): Random state: the same features give the same map.
        perplexity (float): t-SNE's, before adapting to ``N``.

    Returns:
        np.ndarray: ``(N, 2)`` float coordinates (zeros for a single
        point).

    Example:
        >>> embed_2d(np.random.rand(20, 8)).shape
        (20, 2)
    """
    x = np.asarray(features, dtype=np.float32)
    if x.ndim != 2:
        raise ValueError(f'features must be (N, D), got shape {x.shape}')
    if method not in ('tsne', 'umap'):
        raise ValueError(f"method must be 'tsne' or 'umap', got {method!r}")
    if len(x) < 3:  # no neighbourhood to keep: spread them on a line
        return np.stack([np.arange(len(x), dtype=np.float64),
                         np.zeros(len(x))], axis=1)
    if method == 'umap':
        try:
            import umap
        except ImportError:
            raise ImportError('the UMAP embedding needs umap-learn (pip '
                              'install umap-learn); t-SNE needs nothing '
                              'more') from None
        return umap.UMAP(n_neighbors=min(15, len(x) - 1),
                         random_state=seed).fit_transform(x)
    from sklearn.manifold import TSNE
    return TSNE(n_components=2, perplexity=adapted_perplexity(
        len(x), perplexity), init='pca', random_state=seed
    ).fit_transform(x).astype(np.float64)
