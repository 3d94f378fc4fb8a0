"""Roles and what each may see (CONTRACT section 4)."""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """A user's role."""

    ADMIN = "admin"
    COORDINATOR = "coordinator"
    COURIER = "courier"
    CLINIC = "clinic"
    QA = "qa"
    AUDITOR = "auditor"


SITE_BOUND = frozenset({Role.CLINIC})
SITE_KINDS = ("apheresis", "manufacturing", "treatment")
