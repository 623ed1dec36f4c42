"""Non-Latin class names never come out as empty boxes in the plots."""
from matplotlib.ft2font import FT2Font

from rock_plugin.visualization import plot_confusion_matrix
from rock_plugin.visualization.fonts import _fonts, drawable_names, font_for


def test_latin_names_keep_the_default_font():
    assert drawable_names(['Chert', 'Bauxite']) == (['Chert', 'Bauxite'],
                                                     'DejaVu Sans')


def test_chinese_names_get_a_font_that_has_them_or_indices(tmp_path):
    names = ['石灰岩', '白云岩', 'Chert']
    labels, family = drawable_names(names)
    if family is None:  # no CJK font installed: indices, never boxes
        assert labels == ['#0', '#1', '#2'] and font_for(names) is None
    else:
        path = dict(_fonts())[family]
        font = FT2Font(path)
        assert labels == names
        assert all(font.get_char_index(ord(c)) for c in ''.join(names))
    out = tmp_path / 'cm.png'
    plot_confusion_matrix([[1, 0, 0], [0, 1, 0], [0, 0, 1]], names, str(out))
    assert out.stat().st_size > 0
