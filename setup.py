"""The build maps the repository's top-level ``conf/`` (the one copy of the Hydra configs) into the package as
``genkit/conf``, so an installed genkit trains from any folder. Everything else is in pyproject.toml."""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONF = Path(__file__).resolve().parent / "conf"


class BuildPyWithConf(build_py):
    def run(self):
        super().run()
        target = Path(self.build_lib) / "genkit" / "conf"
        for src in sorted(CONF.rglob("*.yaml")):
            dest = target / src.relative_to(CONF)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest)


setup(cmdclass={"build_py": BuildPyWithConf})
