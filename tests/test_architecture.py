"""The one-door rule, checked on the source: only the repository touches the tables."""

from __future__ import annotations

import ast
from pathlib import Path

from health import PROJECT_ROOT

TABLES_MODULE = "health.db.tables"
ALLOWED = {
    Path("health/db/repository.py"),
    # SQL builders of the repository: they return clauses, and only the repository
    # executes them, through its scope (Repository._visible).
    Path("health/db/search_sql.py"),
    Path("health/db/search_filters.py"),
    Path("health/db/include_sql.py"),
    Path("health/db/access_sql.py"),
    Path("health/db/write_sql.py"),
    # The access facts (a clinician's roles, emergency accesses, care relationships),
    # queried with the repository's session and the caller's scope, for it alone.
    Path("health/db/access_records.py"),
    Path("health/db/migrations/env.py"),
}
# Tables that hold no patient data: the development eID's state (eid_*), the
# authorization server's clients, grants and codes (auth_*), logins in progress at the
# eID (oidc_*), portal sessions (portal_*) and the import ledger (import_*). Their
# stores may import these by name, and nothing else from the table module. The access
# log (audit_*) holds who saw what, never clinical content, and its readers apply the
# access decision themselves (health/audit/routes.py, the portal).
STATE_TABLE_PREFIXES = ("eid_", "auth_", "oidc_", "portal_", "import_", "audit_")


def _python_files() -> list[Path]:
    roots = [PROJECT_ROOT / name for name in ("health", "tests", "bench", "seed_data")]
    return [path for root in roots if root.is_dir() for path in root.rglob("*.py")]


def _is_state_table(name: str) -> bool:
    return name.startswith(STATE_TABLE_PREFIXES) or name.isupper()


def _imports_tables(path: Path) -> bool:
    """Whether `path` imports the table module, or any table of it but the state tables."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(
            alias.name == TABLES_MODULE for alias in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if module == TABLES_MODULE:
                return not all(_is_state_table(alias.name) for alias in node.names)
            if module == "health.db" and any(alias.name == "tables" for alias in node.names):
                return True
    return False


def test_only_the_repository_imports_the_table_definitions() -> None:
    offenders = [
        str(path.relative_to(PROJECT_ROOT))
        for path in _python_files()
        if path.relative_to(PROJECT_ROOT) not in ALLOWED and _imports_tables(path)
    ]
    assert offenders == [], f"outside the repository, these import the tables: {offenders}"


def test_the_check_sees_an_offending_import(tmp_path: Path) -> None:
    offending = tmp_path / "leak.py"
    offending.write_text("from health.db.tables import resource\n", encoding="utf-8")
    assert _imports_tables(offending)
    offending.write_text("from health.db.tables import auth_grant, resource\n", encoding="utf-8")
    assert _imports_tables(offending)
    offending.write_text("from health.db import tables\n", encoding="utf-8")
    assert _imports_tables(offending)


def test_the_check_allows_the_state_tables(tmp_path: Path) -> None:
    store = tmp_path / "store.py"
    store.write_text("from health.db.tables import auth_grant, oidc_login\n", encoding="utf-8")
    assert not _imports_tables(store)


def test_no_python_package_named_fhir_shadows_fhir_resources() -> None:
    # fhir.resources owns the import name `fhir`; see DESIGN.md.
    assert not (PROJECT_ROOT / "fhir" / "__init__.py").exists()
    assert not list((PROJECT_ROOT / "tests").rglob("__init__.py"))
    assert not list((PROJECT_ROOT / "fhir").rglob("*.py"))
