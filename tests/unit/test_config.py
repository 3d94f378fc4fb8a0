"""Settings are layered: default.toml, COLDCHAIN_CONFIG, COLDCHAIN_* variables."""

from __future__ import annotations

from pathlib import Path

import pytest

from coldchain.config import ConfigError, load_settings


def test_the_shipped_defaults_hold_the_four_profiles() -> None:
    settings = load_settings(env={})
    assert settings["mqtt_url"] == "mqtt://127.0.0.1:1883"
    profiles = settings.profiles
    assert set(profiles) == {"LN2_VAPOR", "DRY_ICE", "REFRIGERATED", "CRT"}
    assert (profiles["LN2_VAPOR"].min_c, profiles["LN2_VAPOR"].max_c) == (None, -150)
    assert (profiles["DRY_ICE"].max_c, profiles["DRY_ICE"].grace_s) == (-60, 0)
    assert (profiles["REFRIGERATED"].min_c, profiles["REFRIGERATED"].max_c) == (2, 8)
    assert profiles["REFRIGERATED"].grace_s == 900
    assert (profiles["CRT"].min_c, profiles["CRT"].max_c, profiles["CRT"].grace_s) == (15, 25, 1800)
    assert {p.signal_loss_s for p in profiles.values()} == {900}


def test_the_default_database_is_a_sqlite_file_under_var() -> None:
    assert load_settings(env={}).database_url == "sqlite:///var/coldchain.db"


def test_a_config_file_then_the_environment_override_the_defaults(tmp_path: Path) -> None:
    extra = tmp_path / "site.toml"
    extra.write_text('mqtt_url = "mqtt://broker:1884"\n[ingest]\nbatch_max_messages = 7\n')
    env = {
        "COLDCHAIN_CONFIG": str(extra),
        "COLDCHAIN_INGEST_BATCH_MAX_MS": "5",
        "COLDCHAIN_DATABASE_URL": "postgresql+psycopg://u@h/db",
    }
    settings = load_settings(env=env)
    assert settings["mqtt_url"] == "mqtt://broker:1884"
    assert settings["ingest_batch_max_messages"] == 7
    assert settings["ingest_batch_max_ms"] == 5
    assert settings.database_url == "postgresql+psycopg://u@h/db"
    env["COLDCHAIN_MQTT_URL"] = "mqtt://other:1"
    assert load_settings(env=env)["mqtt_url"] == "mqtt://other:1"


def test_an_unknown_setting_in_a_file_is_refused(tmp_path: Path) -> None:
    extra = tmp_path / "bad.toml"
    extra.write_text("mqtt_ulr = 'x'\n")
    with pytest.raises(ConfigError, match="mqtt_ulr"):
        load_settings(env={"COLDCHAIN_CONFIG": str(extra)})


def test_a_profiles_file_with_a_bad_profile_is_refused(tmp_path: Path) -> None:
    profiles = tmp_path / "p.toml"
    profiles.write_text("[X]\nmin_c = 8\nmax_c = 2\nsignal_loss_s = 900\n")
    with pytest.raises(Exception, match="min_c"):
        load_settings(env={"COLDCHAIN_PROFILES_FILE": str(profiles)})
