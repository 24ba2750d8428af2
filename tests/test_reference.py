"""The quoted reference data (data/reference/*.csv) and its loader."""
from __future__ import annotations

import csv
import math
import re

import pytest

from pi05perf.reference import REFERENCE_DIR, SCHEMA, load_reference, quote, quoted

FILES = ("seed_thor.csv", "anchors.csv")
UNITS = {
    "ms", "s", "GB/s", "GB", "MB", "TFLOPS", "GFLOP", "FLOP", "ratio", "pct", "Hz", "cos",
    "count", "tokens", "steps", "version", "weeks", "bit", "px",
}
SEED_SOURCE = "seed: ../shared/seed/000_492d4811ae218214.txt"
ANCHOR_SECTIONS = {
    "The seed", "The model (Physical-Intelligence/openpi)", "Published latencies",
    "Asynchronous execution", "Hardware",
}
KEY_RE = re.compile(r"^[a-z0-9]+(_[a-z0-9]+)*$")


def _rows(name: str) -> tuple[list[str], list[dict[str, str]]]:
    with open(REFERENCE_DIR / name, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


@pytest.mark.parametrize("name", FILES)
def test_schema_is_exact(name: str) -> None:
    header, rows = _rows(name)
    assert tuple(header) == SCHEMA
    assert rows, f"{name} has no rows"
    for r in rows:
        assert None not in r, f"{name}: row {r.get('key')} has extra fields"
        assert all(v is not None for v in r.values()), f"{name}: row {r.get('key')} has missing fields"


def test_keys_unique_across_files_and_snake_case() -> None:
    keys = [r["key"] for name in FILES for r in _rows(name)[1]]
    dup = sorted({k for k in keys if keys.count(k) > 1})
    assert not dup, f"duplicate keys: {dup}"
    bad = [k for k in keys if not KEY_RE.match(k)]
    assert not bad, f"keys not snake_case: {bad}"


@pytest.mark.parametrize("name", FILES)
def test_values_are_finite_floats(name: str) -> None:
    for r in _rows(name)[1]:
        v = float(r["value"])  # raises on units, ranges, '~'
        assert math.isfinite(v), r["key"]


@pytest.mark.parametrize("name", FILES)
def test_required_fields_filled_and_units_allowed(name: str) -> None:
    for r in _rows(name)[1]:
        for col in ("key", "experiment", "quantity", "unit", "platform", "section", "source"):
            assert r[col].strip(), f"{name}: {r['key']} has empty {col}"
        assert r["unit"] in UNITS, f"{name}: {r['key']} has unit {r['unit']!r}"


def test_seed_rows_cite_seed_and_bilingual_section() -> None:
    for r in _rows("seed_thor.csv")[1]:
        assert r["source"] == SEED_SOURCE, r["key"]
        # Chinese heading as written, then "(English translation)"
        assert re.search(r"[\u4e00-\u9fff]", r["section"]), r["key"]
        assert re.search(r"\([A-Za-z][^()]*\)$", r["section"]), r["key"]


def test_anchor_rows_use_anchor_sections() -> None:
    for r in _rows("anchors.csv")[1]:
        assert r["section"] in ANCHOR_SECTIONS, (r["key"], r["section"])


@pytest.mark.parametrize(
    "key, value, unit",
    [
        ("kv_prefill_standalone_ms", 47.38, "ms"),
        ("pipeline_baseline_total_ms", 176.5, "ms"),
        ("pipeline_buffered_total_ms", 181.3, "ms"),
        ("kv_breakdown_mlp_down_ms", 21.9, "ms"),
        ("kv_breakdown_measured_total_ms", 54.0, "ms"),
        ("hw_avg_bandwidth_gbps", 130.1, "GB/s"),
        ("triton_vs_cublas_ratio", 0.41, "ratio"),
        ("quantlib_torchao_int8_speed_ratio", 0.09, "ratio"),
        ("down_proj_bw_seq712_gbps", 49, "GB/s"),
        ("weight_read_floor_ms", 22, "ms"),
        ("weights_total_bf16_gb", 3.96, "GB"),
        ("pipeline_buffered_effective_hz", 26.6, "Hz"),
        ("nvidia_thor_trt_fp8_ms", 54, "ms"),
        ("nvidia_thor_fp8_cos", 0.9995, "cos"),
        ("nvidia_thor_trt_fp8_nvfp4_mean_ms", 48.84, "ms"),
        ("flashrt_fp8_2view_ms", 44.0, "ms"),
        ("thor_bandwidth_gbps", 273, "GB/s"),
        ("openpi_libero_replan_steps", 5, "steps"),
    ],
)
def test_spot_checks(key: str, value: float, unit: str) -> None:
    assert quoted(key) == pytest.approx(value, rel=0, abs=1e-9)
    assert quote(key)["unit"] == unit


def test_quote_row_and_origin() -> None:
    row = quote("kv_prefill_standalone_ms")
    assert set(SCHEMA) | {"origin"} == set(row)
    assert row["origin"] == "seed"
    assert quote("flashrt_fp8_2view_ms")["origin"] == "anchor"
    df = load_reference()
    assert set(df["origin"]) == {"seed", "anchor"}
    assert len(df) == sum(len(_rows(n)[1]) for n in FILES)


def test_unknown_key_raises_with_suggestions() -> None:
    with pytest.raises(KeyError, match="kv_prefill_standalone_mss") as err:
        quoted("kv_prefill_standalone_mss")
    assert "kv_prefill_standalone_ms" in str(err.value)
    with pytest.raises(KeyError):
        quote("no_such_key_anywhere")


def test_every_chinese_text_carries_its_english_translation():
    """A reader without CJK fonts (or Chinese) still reads every seed heading and quote."""
    import csv
    import re
    from pathlib import Path

    han = re.compile(r"[\u4e00-\u9fff]+")
    bad = []
    for path in sorted((Path(__file__).resolve().parents[1] / "data" / "reference").glob("*.csv")):
        for row in csv.DictReader(path.open(encoding="utf-8")):
            for column, text in row.items():
                if text and han.search(text) and not re.search(r"[A-Za-z]{3,}", han.sub("", text)):
                    bad.append(f"{path.name} {row.get('key')} {column}: {text}")
    assert not bad, "\n".join(bad)
