"""The README's Python examples work as written: each ```python block of the section "Using the
Python API" runs from the repository root (the TensorFlow block needs the fixtures)."""

from __future__ import annotations

import contextlib
import io
import re

import pytest

from conftest import FIXTURES, PPOCR, REPO


def _python_blocks() -> list:
    text = (REPO / "README.md").read_text()
    start = text.index("## Using the Python API")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_has_python_examples():
    assert len(_python_blocks()) >= 2


@pytest.mark.parametrize("index", [0, 1])
def test_readme_python_example(index, monkeypatch):
    code = _python_blocks()[index]
    if "models/ppocr_cls" in code and not PPOCR.is_file():
        pytest.skip("models/ppocr_cls/model.onnx missing")
    if "../shared/fixtures" in code and not FIXTURES.is_dir():
        pytest.skip(f"fixtures not found at {FIXTURES}")
    if "../shared/fixtures" in code and FIXTURES.resolve() != (REPO.parent / "shared" / "fixtures").resolve():
        code = code.replace('"../shared/fixtures"', repr(str(FIXTURES)))
    monkeypatch.chdir(REPO)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, f"README.md python block {index}", "exec"), {"__name__": "__readme__"})
    printed = out.getvalue()
    assert printed.strip()
    if index == 0:
        assert "expects shape [?,3,?,?], got [8,2,48,192]" in printed
        assert "Conversion summary" in printed
