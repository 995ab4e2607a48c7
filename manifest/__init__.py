"""Teams app package for License Desk: manifest template, icons and the package builder."""

from manifest.build import (
    DEFAULT_VERSION,
    MANIFEST_VERSION,
    build_package,
    load_manifest,
    validate_app_id,
    validate_domain,
)

__all__ = [
    "DEFAULT_VERSION",
    "MANIFEST_VERSION",
    "build_package",
    "load_manifest",
    "validate_app_id",
    "validate_domain",
]
