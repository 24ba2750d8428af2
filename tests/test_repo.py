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
