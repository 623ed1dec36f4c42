"""Annotation / classes parsers, including hypothesis fuzzing."""
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rock_plugin.datasets.annotations import (DataError, format_annotation_line,
                                              parse_annotation_text,
                                              parse_classes_text)


def test_annotation_paths_with_spaces_and_backslashes():
    lines = ['datasets\\train\\Chert\\a b.jpg 3', '', '# comment',
             '/abs/path/x.png   0  ']
    assert parse_annotation_text(lines) == [
        ('datasets/train/Chert/a b.jpg', 3, 1), ('/abs/path/x.png', 0, 4)]


@pytest.mark.parametrize('line,message', [
    ('only_a_path.jpg', 'expected "<image path> <label index>"'),
    ('a.jpg x', "label 'x' is not an integer"),
    ('a.jpg 1.5', "label '1.5' is not an integer"),
    ('a.jpg 3', 'label 3 out of range: there are 3 classes'),
    ('a.jpg -1', 'label -1 out of range'),
])
def test_annotation_errors_name_file_and_line(line, message):
    with pytest.raises(DataError) as exc:
        parse_annotation_text(['ok.jpg 0', line], 'train.txt', num_classes=3)
    assert str(exc.value).startswith('train.txt:2: ')
    assert message in str(exc.value)
    assert exc.value.line == 2


def test_classes_both_layouts():
    assert parse_classes_text(['Chert 1', 'Bauxite 0', '']) == ['Bauxite',
                                                                'Chert']
    assert parse_classes_text(['Sparry Calcarenite 0', 'Chert 1']) == [
        'Sparry Calcarenite', 'Chert']
    assert parse_classes_text(['Bauxite', 'Chert']) == ['Bauxite', 'Chert']


@pytest.mark.parametrize('lines,message', [
    (['A', 'B', 'A'], "duplicate class name 'A' (first on line 1)"),
    (['A 0', 'B 0'], 'duplicate class index 0'),
    (['A 0', 'B 2'], 'class indices must be 0..1'),
    (['A 0', '3'], 'empty class name'),
    (['A 0', 'B'], 'mixes'),
    (['', '  '], 'lists no class names'),
])
def test_classes_errors(lines, message):
    with pytest.raises(DataError, match='^classes.txt') as exc:
        parse_classes_text(lines, 'classes.txt')
    assert message in str(exc.value)


def test_format_line_round_trip():
    line = format_annotation_line('a\\b c.jpg', 4)
    assert line == 'a/b c.jpg 4'
    assert parse_annotation_text([line]) == [('a/b c.jpg', 4, 1)]


# -- fuzzing: any input either parses or raises DataError, never anything else
text_lines = st.lists(st.text(max_size=40), max_size=12)


@settings(max_examples=300, deadline=None)
@given(text_lines, st.one_of(st.none(), st.integers(1, 20)))
def test_fuzz_annotation_parser(lines, num_classes):
    try:
        samples = parse_annotation_text(lines, 'f.txt', num_classes)
    except DataError as exc:
        assert str(exc).startswith('f.txt')
        return
    for path, label, lineno in samples:
        assert '\\' not in path and path
        assert label >= 0 and (num_classes is None or label < num_classes)
        assert 1 <= lineno <= len(lines)


@settings(max_examples=300, deadline=None)
@given(text_lines)
def test_fuzz_classes_parser(lines):
    try:
        names = parse_classes_text(lines, 'c.txt')
    except DataError as exc:
        assert str(exc).startswith('c.txt')
        return
    assert names and len(set(names)) == len(names)
    assert all(n.strip() for n in names)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(
    st.text(st.characters(blacklist_categories=('Cc', 'Cs', 'Zl', 'Zp')),
            min_size=1, max_size=20).filter(lambda s: s.strip() == s and s),
    st.integers(0, 50)), min_size=1, max_size=10))
def test_fuzz_annotation_round_trip(samples):
    lines = [format_annotation_line(p, lbl) for p, lbl in samples]
    parsed = parse_annotation_text(lines)
    kept = [(p.replace('\\', '/'), lbl) for p, lbl in samples
            if not p.startswith('#')]
    assert [(p, lbl) for p, lbl, _ in parsed] == kept
