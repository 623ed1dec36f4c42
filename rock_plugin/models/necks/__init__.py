from .concat_gap import ConcatGlobalAveragePooling

__all__ = ['ConcatGlobalAveragePooling']
