"""Provider discovery: `providers.<name>.PROVIDER` — the one dynamic import in Nudge.

A third provider is one folder under `providers/` exporting PROVIDER; nothing here changes.
Folders whose names start with `_` hold shared machinery and are not providers.
"""

from __future__ import annotations

import importlib
import importlib.util
import pkgutil
from collections.abc import Mapping

from connector.errors import ConfigError
from connector.ports import ProviderSettings, ProviderSpec

PROVIDERS_PACKAGE = "providers"


def available_provider_names(package: str = PROVIDERS_PACKAGE) -> list[str]:
    """Names of the provider folders installed, found without importing them."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    return sorted(
        info.name
        for info in pkgutil.iter_modules(list(spec.submodule_search_locations))
        if info.ispkg and not info.name.startswith("_")
    )


def load_spec(name: str, package: str = PROVIDERS_PACKAGE) -> ProviderSpec:
    """Import `package.name` and return its PROVIDER; ConfigError if it has none."""
    module = importlib.import_module(f"{package}.{name}")
    spec = getattr(module, "PROVIDER", None)
    if not isinstance(spec, ProviderSpec):
        raise ConfigError(f"provider {name!r} does not export PROVIDER (a connector.ports.ProviderSpec)")
    if spec.key != name:
        raise ConfigError(f"provider folder {name!r} exports PROVIDER with key {spec.key!r}; they must match")
    return spec


class Registry:
    """The providers this deployment has configured, with their settings."""

    def __init__(self, specs: Mapping[str, ProviderSpec], settings: Mapping[str, ProviderSettings]) -> None:
        self._specs = dict(specs)
        self._settings = dict(settings)

    @classmethod
    def discover(cls, settings: Mapping[str, ProviderSettings], package: str = PROVIDERS_PACKAGE) -> Registry:
        """Load the spec of every configured (enabled) provider."""
        return cls({name: load_spec(name, package) for name in settings}, settings)

    def keys(self) -> list[str]:
        """The configured provider keys, sorted."""
        return sorted(self._specs)

    def spec(self, key: str) -> ProviderSpec:
        """The spec of configured provider `key` (ConfigError naming the configured ones if unknown)."""
        try:
            return self._specs[key]
        except KeyError:
            raise ConfigError(
                f"provider {key!r} is not configured (configured: {', '.join(self.keys()) or 'none'})"
            ) from None

    def settings(self, key: str) -> ProviderSettings:
        """The settings of configured provider `key` (ConfigError if unknown)."""
        self.spec(key)
        return self._settings[key]

    def __contains__(self, key: object) -> bool:
        return key in self._specs
