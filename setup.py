"""Packaging: everything is in setup.cfg except one mapping setup.cfg cannot express.

`resources/` stays at the top of the repository (as the design asks) but is installed as
`pathpt_engine/resources` inside the project's own namespace, so the wheel puts no generic top-level `resources`
package into site-packages. `pathpt_engine.assets.resource_root()` finds it installed, and in a source checkout
(editable installs included) falls back to the repository's `resources/`.
"""

from setuptools import find_namespace_packages, find_packages, setup

PACKAGES = find_packages(include=["pathpt_engine", "pathpt_engine.*", "pathpt_gui", "pathpt_gui.*"])
# resources/' data folders (classsets, models/demo, icons, ...) as packages too, so setuptools ships them knowingly
DATA_DIRS = [f"pathpt_engine.resources.{p}" for p in find_namespace_packages(where="resources")]

setup(
    packages=[*PACKAGES, "pathpt_engine.resources", *DATA_DIRS],
    package_dir={"pathpt_engine.resources": "resources"},
    package_data={"pathpt_engine.resources": ["**/*"]},
)
