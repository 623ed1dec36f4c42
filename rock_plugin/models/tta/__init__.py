from .log_mean_score_tta import LogMeanClsScoreTTA

__all__ = ['LogMeanClsScoreTTA']
