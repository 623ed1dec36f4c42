"""The package's layering, read from the source with ``ast``: no import
cycle between subpackages, ``visualization`` only draws, ``utils`` stands
alone, nothing imports the tools; docs/internals.md draws the same graph.

Print the drawing for the docs: ``python tests/test_structure.py``.
"""
import ast
import os.path as osp
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / 'rock_plugin'
DOCS = REPO / 'docs' / 'internals.md'
SUBPACKAGES = ('datasets', 'models', 'engine', 'evaluation', 'visualization',
               'apis', 'utils')
# What each subpackage may import, beyond the acyclic rule.
FORBIDDEN = dict(visualization={'evaluation', 'engine', 'apis'},
                 utils=set(SUBPACKAGES) - {'utils'})

Graph = Dict[str, Dict[str, Set[str]]]


def _module_name(path: Path) -> Tuple[str, ...]:
    parts = path.relative_to(REPO).with_suffix('').parts
    return parts[:-1] if parts[-1] == '__init__' else parts


def iter_imports(path: Path) -> Iterator[Tuple[str, int]]:
    """Every module a file imports (``import``, ``from``, relative ones
    resolved, ``importlib.import_module``/``__import__`` of a literal),
    wherever the statement is (lazy imports in functions count), with
    its line."""
    module = _module_name(path)
    package = module if path.name == '__init__.py' else module[:-1]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                base = '.'.join(base + (node.module, ) if node.module
                                else base)
            else:
                base = node.module
            # 'from . import engine': each name may be a module.
            for alias in node.names:
                yield f'{base}.{alias.name}', node.lineno
        elif isinstance(node, ast.Call) and node.args and isinstance(
                node.args[0], ast.Constant) and isinstance(
                node.args[0].value, str) and (
                getattr(node.func, 'attr', None) == 'import_module'
                or getattr(node.func, 'id', None) in ('__import__',
                                                      'import_module')):
            yield node.args[0].value, node.lineno


def package_files() -> List[Path]:
    return sorted(PACKAGE.rglob('*.py'))


def subpackage_of(path: Path):
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def subpackage_graph() -> Graph:
    """``{importer: {imported: {'file:line', ...}}}`` between the
    subpackages of ``rock_plugin`` (the top-level ``__init__`` left out:
    it imports them all to register their classes)."""
    graph: Graph = {name: defaultdict(set) for name in SUBPACKAGES}
    for path in package_files():
        src = subpackage_of(path)
        if src is None:
            continue
        for name, line in iter_imports(path):
            parts = name.split('.')
            if parts[0] == 'rock_plugin' and len(parts) > 1 and \
                    parts[1] in SUBPACKAGES and parts[1] != src:
                where = f'{path.relative_to(REPO)}:{line}'
                graph.setdefault(src, defaultdict(set))[parts[1]].add(where)
    return graph


def find_cycle(graph: Graph):
    """A list of subpackages ``[a, b, ..., a]`` forming a cycle, or None."""
    state: Dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, {})):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def mermaid(graph: Graph = None) -> str:
    """The subpackage graph as a mermaid flowchart (sorted, so that the
    text changes only when the imports do).

    Example:
        >>> print(mermaid())  # paste into docs/internals.md, "Structure"
    """
    graph = subpackage_graph() if graph is None else graph
    lines = ['```mermaid', 'flowchart TD']
    lines += [f'    {src} --> {dst}' for src in sorted(graph)
              for dst in sorted(graph[src])]
    lines += [f'    {name}' for name in sorted(graph)
              if not graph[name] and not any(name in graph[s] for s in graph)]
    return '\n'.join(lines + ['```'])


def _edges(graph: Graph, src: str, dsts) -> List[str]:
    return [f'{src} -> {dst} ({", ".join(sorted(graph[src][dst]))})'
            for dst in sorted(set(graph[src]) & set(dsts))]


def test_the_subpackage_list_is_complete():
    found = {p.name for p in PACKAGE.iterdir()
             if (p / '__init__.py').is_file()}
    assert found == set(SUBPACKAGES)


def test_no_import_cycle_between_subpackages():
    graph = subpackage_graph()
    cycle = find_cycle(graph)
    assert cycle is None, 'import cycle ' + ' -> '.join(cycle or []) + ': ' \
        + '; '.join(w for a, b in zip(cycle or [], (cycle or [])[1:])
                    for w in _edges(graph, a, [b]))


@pytest.mark.parametrize('src', sorted(FORBIDDEN))
def test_layers_import_only_below(src):
    graph = subpackage_graph()
    assert _edges(graph, src, FORBIDDEN[src]) == []


def test_visualization_writes_no_tables():
    # Drawing only: tables (CSV, JSON) are evaluation's.
    writers = ('atomic_write_csv', 'atomic_write_json', 'csv.writer',
               'DictWriter')
    hits = [f'{p.relative_to(REPO)}: {w}'
            for p in sorted((PACKAGE / 'visualization').glob('*.py'))
            for w in writers if w in p.read_text()]
    assert hits == []


def test_nothing_in_the_package_imports_the_tools():
    tools = REPO / 'tools'
    names = {'tools'} | {p.stem for p in tools.rglob('*.py')}
    hits = [f'{p.relative_to(REPO)}:{line} imports {name}'
            for p in package_files() for name, line in iter_imports(p)
            if name.split('.')[0] in names]
    assert hits == []
    assert osp.isfile(tools / '_common.py')  # the names really were read


def test_the_docs_draw_this_graph():
    text = DOCS.read_text()
    assert '\n## Structure\n' in text, f'{DOCS}: no "## Structure" section'
    section = text.split('\n## Structure\n', 1)[1].split('\n## ', 1)[0]
    start = section.index('```mermaid')
    drawn = section[start:section.index('```', start + 3) + 3]
    assert drawn == mermaid(), (
        f'{DOCS} "Structure" is stale; replace its mermaid block with the '
        'output of: python tests/test_structure.py')


def test_the_graph_reads_relative_and_lazy_imports():
    # The reader itself: a relative import at the top, an absolute one
    # inside a function.
    names = {n for n, _ in iter_imports(
        PACKAGE / 'evaluation' / 'cross_validation.py')}
    assert 'rock_plugin.evaluation.metrics.class_report.' \
        'compute_rock_metrics' in names
    assert 'rock_plugin.utils.text.printable' in names
    assert 'rock_plugin.engine' in {n for n, _ in iter_imports(
        PACKAGE / '__init__.py')}  # 'from . import engine'
    graph = {'a': {'b': {'x'}}, 'b': {'c': {'y'}}, 'c': {'a': {'z'}}}
    assert find_cycle(graph) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b': {'x'}}, 'b': {}}) is None


if __name__ == '__main__':
    print(mermaid())
