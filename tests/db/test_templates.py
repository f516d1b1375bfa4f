"""A clause built once and filled per request (health/db/templates.py): each execution
runs with its own values, from one compiled statement."""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Column,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    event,
    insert,
    select,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler

from health.db.templates import Bound, Filled, Inline, Template

metadata = MetaData()
things = Table("things", metadata, Column("id", Integer, primary_key=True), Column("kind", String))


class _Filled(Filled):
    __visit_name__ = "test_filled"
    inherit_cache = True


@compiles(_Filled)
def _compile(element: _Filled, compiler: SQLCompiler, **kw: Any) -> str:
    return "(" + compiler.process(element.with_values(), **kw) + ")"


def _template() -> Template:
    return Template.build(
        "test",
        _Filled,
        lambda bound: (
            things.c.kind.in_(bound.many("kinds", things.c.kind))
            & (things.c.id > bound.one("above", things.c.id))
        ),
    )


def test_one_compiled_statement_runs_with_each_requests_values() -> None:
    engine = create_engine("sqlite://")
    metadata.create_all(engine)
    hits: list[bool] = []

    def note(_c: Any, _cur: Any, _s: Any, _p: Any, context: Any, *_: Any) -> None:
        hits.append(context.cache_hit == context.dialect.CACHE_HIT)

    template = _template()
    with engine.begin() as connection:
        connection.execute(
            insert(things),
            [{"id": 1, "kind": "a"}, {"id": 2, "kind": "b"}, {"id": 3, "kind": "a"}],
        )
        event.listen(engine, "before_cursor_execute", note)

        def ids(values: dict[str, Any]) -> list[int]:
            statement = select(things.c.id).where(template.fill(values)).order_by(things.c.id)
            return list(connection.execute(statement).scalars())

        assert ids({"kinds": ["a"], "above": 0}) == [1, 3]
        assert ids({"kinds": ["b"], "above": 0}) == [2]
        assert ids({"kinds": ["a", "b"], "above": 1}) == [2, 3]
    assert hits == [False, True, True]


def test_a_key_compared_twice_is_one_parameter() -> None:
    bound = Bound("test", 1)
    first = bound.one("now", things.c.id)

    assert bound.one("now", things.c.id) is first
    assert [key for _, key in bound.binds] == ["now"]


def test_inline_hands_out_the_values_themselves() -> None:
    assert Inline({"kinds": ["a"]}).many("kinds", things.c.kind) == ["a"]
    assert Inline(["x", 2]).one(1, things.c.id) == 2
