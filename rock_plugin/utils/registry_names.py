"""Config ``type`` values as data: looked up among registered classes,
never imported."""
from typing import Optional


def type_name(node) -> str:
    """The class name a config node's ``type`` gives: a class's
    ``__name__``, or the last part of a (scoped or dotted) name; ``''``
    for a node without one.

    Example:
        >>> type_name(dict(type='mmpretrain.LinearClsHead'))
        'LinearClsHead'
    """
    kind = node.get('type', '') if isinstance(node, dict) else ''
    return str(getattr(kind, '__name__', kind)).split('.')[-1]


def registered_class(registry, node) -> Optional[type]:
    """The class among ``registry``'s registered ones that a config node's
    ``type`` names (see :func:`type_name`), or None.

    Unlike ``Registry.get``, which imports a dotted name it does not know
    (mmengine's ``get_object_from_string``), this never imports: a config
    read out of a checkpoint or a model file is data.

    Example:
        >>> from mmpretrain.registry import MODELS
        >>> registered_class(MODELS, dict(type='os.system')) is None
        True
    """
    kind = node.get('type') if isinstance(node, dict) else None
    if isinstance(kind, type):
        return kind
    return registry.module_dict.get(type_name(node)) if kind else None


def is_registered_subclass(registry, node, base: type) -> bool:
    """Whether a config node's ``type`` is a registered subclass of
    ``base`` (or ``base``): subclasses of the package's models and heads
    pass the checks their bases pass.

    Example:
        >>> from mmpretrain.registry import MODELS
        >>> from rock_plugin.models import OpenSetLinearClsHead
        >>> is_registered_subclass(MODELS, dict(type='OpenSetMLPClsHead'),
        ...                        OpenSetLinearClsHead)
        True
    """
    cls = registered_class(registry, node)
    return isinstance(cls, type) and issubclass(cls, base)
