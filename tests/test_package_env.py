"""A package trial's environment: what it resolves from the installed distributions, and
what the made environment holds."""

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from hydra_vertex_pipelines.pipeline_builder.local import package_env
from hydra_vertex_pipelines.pipeline_builder.local.package_env import PackageEnvError, resolve


def wheel(folder: Path, name: str, requires=(), files=None) -> Path:
    path = folder / f"{name}-1.0-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in (files or {f"{name}/__init__.py": "VALUE = 1\n"}).items():
            archive.writestr(file, text)
        metadata = "".join(f"Requires-Dist: {r}\n" for r in requires)
        archive.writestr(f"{name}-1.0.dist-info/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n{metadata}")
        archive.writestr(f"{name}-1.0.dist-info/RECORD", "")
    return path


def installed(site: Path, name: str, version: str, requires=(), scripts=None) -> None:
    """A distribution as pip leaves it in site-packages: its module and its dist-info."""
    (site / name).mkdir(parents=True)
    (site / name / "__init__.py").write_text(f"NAME = {name!r}\n\ndef main():\n    print('ran', NAME)\n")
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    metadata = "".join(f"Requires-Dist: {r}\n" for r in requires)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n{metadata}")
    if scripts:
        (info / "entry_points.txt").write_text("[console_scripts]\n" + "".join(f"{s} = {name}:main\n" for s in scripts))
    files = [f"{name}/__init__.py", f"{info.name}/METADATA", f"{info.name}/RECORD"] + (
        [f"{info.name}/entry_points.txt"] if scripts else []
    )
    (info / "RECORD").write_text("".join(f"{f},,\n" for f in files))


@pytest.fixture
def site(tmp_path):
    site = tmp_path / "site-packages"
    site.mkdir()
    installed(site, "alpha", "2.0", ["beta[fast]>=1", 'gamma; python_version < "3"', 'delta; extra == "extra"'])
    installed(site, "beta", "1.5", ['epsilon; extra == "fast"'], scripts=["beta-tool"])
    installed(site, "epsilon", "0.1")
    installed(site, "unrelated", "9.9")  # installed, but nobody asks for it
    return site


def probe(site: Path) -> dict:
    return {**package_env._probe(sys.executable), "path": [str(site)]}


def test_the_wheels_requirements_resolve_with_markers_and_extras(tmp_path, site):
    app = wheel(tmp_path, "app", ["alpha>=2"])
    names = [d.metadata["Name"] for d in resolve([app], probe(site))]
    # gamma's marker is false here, delta is only for alpha[extra], epsilon comes with beta[fast]
    assert names == ["alpha", "beta", "epsilon"]


def test_a_requirement_one_of_the_wheels_meets_is_not_looked_up(tmp_path, site):
    lib = wheel(tmp_path, "lib", ["alpha"])
    app = wheel(tmp_path, "app", ["lib==1.0"])
    assert [d.metadata["Name"] for d in resolve([app, lib], probe(site))] == ["alpha", "beta", "epsilon"]


def test_a_missing_requirement_names_it_and_who_asked(tmp_path, site):
    app = wheel(tmp_path, "app", ["alpha", "zeta>=1"])
    with pytest.raises(
        PackageEnvError, match=r"zeta \(required by app-1.0-py3-none-any.whl\) is not installed .* pip install 'zeta>=1'"
    ):
        resolve([app], probe(site))


def test_a_version_the_requirement_refuses_is_an_error(tmp_path, site):
    app = wheel(tmp_path, "app", ["beta>=2"])
    with pytest.raises(PackageEnvError, match=r"beta 1.5 is installed here, but app-1.0-py3-none-any.whl requires beta>=2"):
        resolve([app], probe(site))


def test_the_environment_holds_the_wheels_and_their_dependencies_only(tmp_path, site, monkeypatch):
    app = wheel(tmp_path, "app", ["alpha"])
    here = probe(site)  # this interpreter, with `site` as everything it has installed
    monkeypatch.setattr(package_env, "_probe", lambda python: here)
    made = package_env.environment(sys.executable, [app])
    check = (
        "import app, alpha, beta, epsilon, importlib.util as u; print(app.VALUE, u.find_spec('unrelated'), u.find_spec('pytest'))"
    )
    out = subprocess.run([made.python, "-c", check], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["1", "None", "None"]
    script = subprocess.run([str(Path(made.bin_dir) / "beta-tool")], capture_output=True, text=True, check=True)
    assert script.stdout.strip() == "ran beta"  # a dependency's console script, on the environment's interpreter
    # the same wheels and versions: the environment is reused, not made again
    package_env._made.clear()
    assert package_env.environment(sys.executable, [app]).root == made.root


def test_a_wheels_scripts_name_the_environment_and_nothing_lands_outside_it(tmp_path, site, monkeypatch):
    files = {
        "app/__init__.py": "",
        "app-1.0.data/scripts/app-run": "#!python\nimport sys\nprint(sys.prefix)\n",
        "../escaped.py": "print('outside')\n",
    }
    app = wheel(tmp_path, "app", files=files)
    here = probe(site)
    monkeypatch.setattr(package_env, "_probe", lambda python: here)
    made = package_env.environment(sys.executable, [app])
    out = subprocess.run([str(Path(made.bin_dir) / "app-run")], capture_output=True, text=True, check=True).stdout
    assert out.strip() == str(made.root)
    assert not list(made.root.parent.rglob("escaped.py")) and not (made.root / "lib" / "escaped.py").exists()
