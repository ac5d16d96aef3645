"""Build step that setup.cfg cannot express: ship sql/ and migrations/ inside the package.

The statements and the migrations stay in the top-level ``sql/`` and ``migrations/``
folders, where DBAs look for them. A wheel (``pip install .``) copies them into
``server/_data/`` so an installed ``media-store`` finds them without a checkout;
server/resources.py looks there first, then beside the package (a checkout or an
editable install, which never gets the copy).
"""
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
DATA_FOLDERS = ("sql", "migrations")


class build_py_with_data(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return   # an editable install reads the checkout's folders in place
        for folder in DATA_FOLDERS:
            for src in sorted((ROOT / folder).rglob("*.sql")):
                rel = src.relative_to(ROOT)
                dest = Path(self.build_lib) / "server" / "_data" / rel
                self.mkpath(str(dest.parent))
                self.copy_file(str(src), str(dest))


setup(cmdclass={"build_py": build_py_with_data})
