"""Code shipped to prebuilt images as wheels (trial.code=package): the project's wheel,
built from its sources, and this launcher's, made from the installed code."""

from . import launcher_wheel, project_wheel
from .project_wheel import PackageUpload, check_wheel, is_pure, upload_command, upload_if_absent

__all__ = ["PackageUpload", "check_wheel", "is_pure", "launcher_wheel", "project_wheel", "upload_command", "upload_if_absent"]
