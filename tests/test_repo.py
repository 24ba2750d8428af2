"""The repository works in any clone: no machine's absolute paths, no stray files, a CLI
that survives a closed pipe."""
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# absolute paths of particular machines (this one's, a home directory, a scratch clone)
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|Users|tmp/fresh|root)/[\w.-]+")


def tracked() -> list[Path]:
    out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    return [ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def test_no_machine_paths_in_tracked_files():
    hits = []
    for path in tracked():
        if path.suffix in {".whl", ".png", ".jpg", ".gz"}:
            continue
        text = path.read_text(errors="replace")
        hits += [f"{path.relative_to(ROOT)}: {m.group(0)}" for m in MACHINE_PATH.finditer(text)]
    assert not hits, "machine-specific absolute paths:\n" + "\n".join(hits[:20])


def test_the_path_pattern_would_catch_one():
    slash = "/"  # built, so this file does not hold the paths it looks for
    assert MACHINE_PATH.search(f'BOOK_HTML = "{slash}work/main/_build/html"')
    assert MACHINE_PATH.search(f"cd {slash}home/alice/pi05perf")
    assert not MACHINE_PATH.search(f"https://example.org{slash}work/x and ~{slash}work/x and data{slash}work/x")


def test_no_wheels_or_build_outputs_tracked():
    bad = [p.name for p in tracked() if p.suffix == ".whl" or "_build" in p.parts or ".venv" in p.parts]
    assert not bad


def test_cli_survives_a_closed_pipe():
    proc = subprocess.Popen([sys.executable, "-m", "pi05perf", "flops", "--model", "gemma_2b"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader (`| head`) went away before the first line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 0 and "BrokenPipeError" not in err, err


def _key_name(node) -> str | None:
    """A dict key's literal text; of an f-string, "…" and its literal tail ("…" alone when a
    placeholder ends it: such a key has no unit)."""
    import ast

    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values:
        return "…" + (node.values[-1].value if isinstance(node.values[-1], ast.Constant) else "")
    return None


def _headline_keys(source: str) -> list[str]:
    """The headline keys a chapter writes, as far as its source spells them: `headline["k"] = `,
    `headline = {...}` and `headline.update({...})`; of an f-string key, its literal tail."""
    import ast

    keys = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Assign):
            for t in node.targets:
                if isinstance(t, ast.Subscript) and isinstance(t.value, ast.Name) and t.value.id == "headline":
                    keys.append(_key_name(t.slice))
                if isinstance(t, ast.Name) and t.id == "headline" and isinstance(node.value, ast.Dict):
                    keys += [_key_name(k) for k in node.value.keys if k is not None]
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                and isinstance(node.func.value, ast.Name) and node.func.value.id == "headline"
                and node.args and isinstance(node.args[0], ast.Dict)):
            keys += [_key_name(k) for k in node.args[0].keys if k is not None]
    return [k for k in keys if k]


def _key_builder_keys(source: str) -> list[str]:
    """Keys that lib's headline builders (functions named `*_keys`) return: the keys of a returned
    dict literal and of `out[...] = ...` assignments inside them."""
    import ast

    keys = []
    for fn in ast.walk(ast.parse(source)):
        if not (isinstance(fn, ast.FunctionDef) and fn.name.endswith("_keys")):
            continue
        for node in ast.walk(fn):
            if isinstance(node, ast.Return) and isinstance(node.value, ast.Dict):
                keys += [_key_name(k) for k in node.value.keys if k is not None]
            if isinstance(node, ast.Assign):
                keys += [_key_name(t.slice) for t in node.targets if isinstance(t, ast.Subscript)]
    return [k for k in keys if k]


def test_every_headline_key_a_chapter_writes_ends_in_a_unit():
    # the results store refuses any other key, but only when the chapter saves: on a GPU, after
    # minutes of work (the H200 run of 3813f1b lost chapter 7 to `graphed_kernel_latency_us`)
    from pi05perf.results import UNIT_SUFFIXES

    bad, found = {}, {}
    for path in sorted((ROOT / "chapters").glob("*.py")) + sorted((ROOT / "lib" / "pi05perf").glob("*.py")):
        keys = _headline_keys(path.read_text()) + _key_builder_keys(path.read_text())
        found[path.stem] = keys
        if wrong := [k for k in keys if not k.endswith(UNIT_SUFFIXES)]:
            bad[path.name] = wrong
    assert not bad, bad
    # the scan finds keys, in chapter 7 and in the builders it calls
    assert len(found["ch07_pipeline"]) > 5 and len(found["pipeline_sweep"]) > 5 and len(found["control_sweep"]) >= 4


def test_the_key_builder_scan_would_catch_a_key_without_unit():
    src = ('def latency_keys(n):\n    return {"a_ms": 1, f"b_{n}": 2}\n'
           'def budget_keys(n):\n    out = {}\n    out[f"c_{n}_text"] = 3\n    return out\n'
           'def other(n):\n    return {"d": 4}\n')
    assert _key_builder_keys(src) == ["a_ms", "…", "…_text"]


def test_the_headline_scan_would_catch_a_key_without_unit():
    src = 'headline = {"a_ms": 1, f"b_{n}_us": 2}\nheadline["c_count"] = 3\nheadline.update({"d": 4})\n'
    assert _headline_keys(src) == ["a_ms", "…_us", "c_count", "d"]
