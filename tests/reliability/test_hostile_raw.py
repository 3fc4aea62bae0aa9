"""Hostile RAW files: every input either decodes or raises DecodeError,
quickly, and the header reader (images.raw_header) never raises. Hypothesis
mutates small DNGs LibRaw decodes (with and without a preview) and the
outlines of a CR3 and a RAF, anywhere and in their first kilobyte, where
the structure is."""

from __future__ import annotations

import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from imgdedupe.core.images.raw_header import read_header
from tests.raw_files import cr3_outline, make_dng, raf_outline

from .fuzzing import TIME_LIMIT_S, check, mutations

pytestmark = pytest.mark.reliability

_PICTURE = Image.linear_gradient("L").convert("RGB").resize((48, 32))
SEEDS = {
    "bare.dng": make_dng(_PICTURE, preview_long_side=None, taken="2024:01:02 03:04:05",
                         orientation=6),
    "preview.DNG": make_dng(_PICTURE, preview_long_side=1024),
    "outline.CR3": cr3_outline(b"2024:05:06 07:08:09\0"),
    "outline.raf": raf_outline(),
}
HEAD = 1024


@st.composite
def header_mutations(draw: st.DrawFn) -> tuple[str, bytes]:
    name, head = draw(mutations({n: d[:HEAD] for n, d in SEEDS.items()}))
    return name, head + SEEDS[name][HEAD:]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> str:  # noqa: ANN001
    return str(tmp_path_factory.mktemp("fuzz-raw"))


def test_the_dng_seeds_decode(folder):
    for name in ("bare.dng", "preview.DNG"):
        for network in (False, True):
            assert check(folder, name, SEEDS[name], network).decoded, name


@settings(max_examples=200, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=st.one_of(mutations(SEEDS), header_mutations()), network=st.booleans())
def test_mutated_raw_files_decode_or_raise_decode_error(folder, case, network):
    name, data = case
    assert read_header(io.BytesIO(data), len(data)) is not None  # never raises
    outcome = check(folder, name, data, network)  # anything but DecodeError fails here
    assert outcome.seconds < TIME_LIMIT_S, (name, outcome)
