"""environment.yml (conda) and pyproject.toml (pip) describe the same environment."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _split(req: str) -> tuple[str, str]:
    name = re.split(r"[\s<>=!~\[;]", req, maxsplit=1)[0]
    return name.lower().replace("_", "-"), req[len(name):].replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = list(project["dependencies"]) + [r for extra in project["optional-dependencies"].values() for r in extra]
    return dict(_split(r) for r in reqs)


def conda_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    out = {}
    for dep in env["dependencies"]:
        items = dep["pip"] if isinstance(dep, dict) else [dep]
        for item in items:
            name, spec = _split(item)
            if name not in ("python", "pip"):
                out[name] = spec
    return out


def test_same_packages_and_versions():
    assert conda_requirements() == pyproject_requirements()


def test_torch_marked_device_provided():
    text = (ROOT / "environment.yml").read_text()
    assert "torch" in conda_requirements()
    assert re.search(r"torch.*device-provided", text) and re.search(r"tensorrt.*JetPack", text)
