"""Package list: `app/` and `resources/` install as mdss_app and mdss_resources (see pyproject)."""

from setuptools import find_packages, setup

packages = find_packages(include=["mdss_core", "mdss_core.*"])
packages += ["mdss_app"] + [f"mdss_app.{name}" for name in find_packages("app")]
packages += ["mdss_resources"]

setup(packages=packages)
