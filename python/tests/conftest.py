"""Shared helpers for the kiln Python tests (run: see README "Python API").

Fixtures come from KILN_FIXTURES_DIR (default: ../shared/fixtures next to the repository);
tests that need one skip when it is missing. Models are written on the fly as GraphDef text
where a tiny graph is enough.
"""

from __future__ import annotations

import json
import os
import pathlib

import numpy as np
import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
FIXTURES = pathlib.Path(os.environ.get("KILN_FIXTURES_DIR", REPO.parent / "shared" / "fixtures"))
PPOCR = REPO / "models" / "ppocr_cls" / "model.onnx"


def fixture_dir(kind: str, name: str) -> pathlib.Path:
    d = FIXTURES / kind / name
    if not (d / "manifest.json").is_file():
        pytest.skip(f"fixture {kind}/{name} not found under {FIXTURES}")
    return d


def manifest(d: pathlib.Path) -> dict:
    return json.loads((d / "manifest.json").read_text())


def fixture_feeds(d: pathlib.Path, by_signature_key: bool = False) -> dict:
    m = manifest(d)
    return {
        (i["signature_key"] if by_signature_key else i["name"]): np.load(d / i["file"])
        for i in m["inputs"]
    }


def check_fixture_outputs(d: pathlib.Path, got: dict, by_signature_key: bool = False) -> None:
    """Compares `got` ({fetch name: array}) with the fixture's recorded outputs."""
    m = manifest(d)
    for o in m["outputs"]:
        key = o["signature_key"] if by_signature_key else o["name"]
        ref = np.load(d / o["file"])
        tol = o.get("tolerance") or m["suggested_tolerance"]
        out = got[key]
        assert out.dtype == ref.dtype, key
        assert out.shape == ref.shape, key
        np.testing.assert_allclose(out, ref, rtol=tol["rtol"], atol=tol["atol"], err_msg=key)


def rel_l2(a: np.ndarray, b: np.ndarray) -> float:
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


def graphdef_text(*nodes: str) -> bytes:
    """A GraphDef in protobuf text format from node bodies."""
    return "".join("node { %s }\n" % n for n in nodes).encode()


def placeholder(name: str, dtype: str = "DT_FLOAT") -> str:
    return f'name: "{name}" op: "Placeholder" attr {{ key: "dtype" value {{ type: {dtype} }} }}'


def op(name: str, op_type: str, *inputs: str, dtype: str = "DT_FLOAT") -> str:
    ins = " ".join(f'input: "{i}"' for i in inputs)
    return f'name: "{name}" op: "{op_type}" {ins} attr {{ key: "T" value {{ type: {dtype} }} }}'


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(20261126)
