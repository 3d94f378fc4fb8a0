"""Settings from config/default.toml, the file named by COLDCHAIN_CONFIG, and COLDCHAIN_* env."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from coldchain.domain.profiles import Profile, profile_from_mapping

CONFIG_DIR = Path(__file__).resolve().parent.parent / "config"
ENV_PREFIX = "COLDCHAIN_"


class ConfigError(Exception):
    """A configuration file or variable that cannot be used."""


@dataclass(frozen=True)
class Settings:
    """Every setting, flattened: top-level keys as they are, table keys as `table_key`."""

    values: Mapping[str, Any]
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    config_dir: Path = CONFIG_DIR

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def get(self, key: str, default: Any = None) -> Any:
        """Return a setting or the default."""
        return self.values.get(key, default)

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, defaulting to a SQLite file under ./var/."""
        url = str(self.values.get("database_url") or "")
        if not url:
            Path("var").mkdir(exist_ok=True)
            url = "sqlite:///var/coldchain.db"
        return url

    @property
    def secret_key(self) -> bytes:
        """The key for sessions and patient hashes."""
        return str(self.values["secret_key"]).encode()

    def with_overrides(self, overrides: Mapping[str, Any]) -> Settings:
        """Return a copy with some settings replaced (tests, the demo)."""
        values = dict(self.values)
        values.update(overrides)
        return Settings(values, _load_profiles(values, self.config_dir), self.config_dir)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}_"))
        else:
            flat[name] = value
    return flat


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from exc


def _env_value(raw: str, current: Any) -> Any:
    if isinstance(current, str):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


def _load_profiles(values: Mapping[str, Any], config_dir: Path) -> dict[str, Profile]:
    path = Path(str(values.get("profiles_file") or "profiles.toml"))
    if not path.is_absolute():
        path = config_dir / path
    return {name: profile_from_mapping(name, raw) for name, raw in _read_toml(path).items()}


def load_settings(
    env: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Load the layered settings; unknown keys in a file or the environment are refused."""
    env = os.environ if env is None else env
    values = _flatten(_read_toml(CONFIG_DIR / "default.toml"))
    extra = env.get(f"{ENV_PREFIX}CONFIG")
    if extra:
        layer = _flatten(_read_toml(Path(extra)))
        unknown = sorted(set(layer) - set(values))
        if unknown:
            raise ConfigError(f"{extra}: unknown settings {unknown}")
        values.update(layer)
    for key in list(values):
        raw = env.get(ENV_PREFIX + key.upper())
        if raw is not None:
            values[key] = _env_value(raw, values[key])
    if overrides:
        values.update(overrides)
    return Settings(values, _load_profiles(values, CONFIG_DIR), CONFIG_DIR)
