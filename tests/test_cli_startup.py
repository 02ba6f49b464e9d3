"""The command list, the lazy loading behind it, and the output helpers that stay off rich."""

from __future__ import annotations

import inspect
import io
import json
from typing import Any

import click
import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st

from phase_golem.cli import app as cli_app
from phase_golem.cli.commands import COMMANDS, CommandSpec
from phase_golem.cli.lazy import build_command
from phase_golem.cli.output import print_json, print_json_array
from phase_golem.cli.tables import IdTable, cell_width
from phase_golem.config_source import DEFAULT_STORAGE_URL
from phase_golem.domain.pipelines import StorageConfig


def first_paragraph(text: str) -> str:
    return " ".join(inspect.cleandoc(text).split("\n\n")[0].split())


@pytest.mark.parametrize("spec", COMMANDS, ids=[spec.name for spec in COMMANDS])
def test_each_listed_command_builds_and_its_help_is_its_docstring(spec: Any) -> None:
    command = build_command(spec)
    assert command.name == spec.name
    assert command.help is not None
    assert first_paragraph(command.help) == spec.help, "update cli/commands.py"


def test_names_are_unique_and_help_lists_every_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    names = [spec.name for spec in COMMANDS]
    assert len(names) == len(set(names))
    assert cli_app.main(["--help"]) == 0
    listed = capsys.readouterr().out.split("Commands:", 1)[1]
    rows = [
        line.split()[0] for line in listed.splitlines() if line.startswith("  ") and line[2] != " "
    ]
    assert rows == names


@pytest.mark.parametrize("name", [spec.name for spec in COMMANDS])
def test_each_command_has_help(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_app.main([name, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"Usage: phase-golem {name}")


def test_an_unknown_command_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_app.main(["stauts"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("phase-golem: error:") and "stauts" in err
    assert err.strip().count("\n") == 0


def test_the_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_app.main(["--version"]) == 0
    assert capsys.readouterr().out.startswith("phase-golem ")


def test_the_default_storage_url_is_the_settings_default() -> None:
    assert StorageConfig().url == DEFAULT_STORAGE_URL


# --- output without rich ----------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=12,
)


@given(st.lists(json_values, max_size=4))
def test_a_streamed_json_array_is_byte_for_byte_the_whole_one(values: list[Any]) -> None:
    buffer = io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdout", buffer)
        print_json_array(iter(values))
        whole = io.StringIO()
        patch.setattr("sys.stdout", whole)
        print_json(values)
    assert buffer.getvalue() == whole.getvalue()
    assert json.loads(buffer.getvalue()) == values


def test_cell_width_counts_wide_characters_twice() -> None:
    assert cell_width("WRK-001") == 7
    assert cell_width("日本") == 4
    assert cell_width("e\u0301") == 1


def make_table(title: str = "a title") -> IdTable:
    table = IdTable(("ID", "STATUS", "SIZE", "TITLE"), ids={"ID"}, droppable=("SIZE",))
    table.add_row("WRK-001", "new", "small", title)
    table.add_row("WRK-1000", "ready", "-", "x")
    return table


def printed(table: IdTable, width: int) -> list[str]:
    buffer = io.StringIO()
    table.print(buffer, width=width)
    return buffer.getvalue().splitlines()


def test_a_table_that_fits_is_plain_aligned_lines() -> None:
    assert printed(make_table(), 80) == [
        "ID        STATUS  SIZE   TITLE",
        "WRK-001   new     small  a title",
        "WRK-1000  ready   -      x",
    ]


def test_a_narrow_table_drops_columns_then_folds_but_keeps_ids_whole() -> None:
    lines = printed(make_table("a long title that cannot fit in so few columns"), 30)
    assert lines[0].split() == ["ID", "STATUS", "TITLE"]  # SIZE went first
    assert max(map(len, lines)) <= 30
    assert [line.split()[0] for line in lines if line.startswith("WRK")] == ["WRK-001", "WRK-1000"]
    tiny = printed(make_table(), 5)
    assert sum(1 for line in tiny if "WRK-001" in line) == 1
    assert sum(1 for line in tiny if "WRK-1000" in line) == 1


def test_markup_in_a_cell_is_text() -> None:
    lines = printed(make_table("[bold]not markup[/bold] and more words to wrap"), 30)
    assert "[bold]not" in "".join(lines)


def test_a_table_refuses_unknown_columns_and_short_rows() -> None:
    with pytest.raises(ValueError, match="no such columns"):
        IdTable(("A",), ids={"B"})
    with pytest.raises(ValueError, match="cells"):
        IdTable(("A", "B"), ids={"A"}).add_row("x")


# Targets other than typer functions: a typer app with subcommands, and a click command.
sample_group = typer.Typer(help="A group.")


@sample_group.command()
def first() -> None:
    """The first one."""


@sample_group.command()
def second() -> None:
    """The second one."""


@click.command()
def sample_click() -> None:
    """A click command."""


def test_a_typer_app_or_a_click_command_can_be_a_target() -> None:
    group = build_command(CommandSpec("things", "tests.test_cli_startup:sample_group", "A group."))
    assert isinstance(group, click.Group) and group.name == "things"
    assert sorted(group.list_commands(click.Context(group))) == ["first", "second"]
    command = build_command(CommandSpec("plain", "tests.test_cli_startup:sample_click", "x"))
    assert command is sample_click and command.name == "plain"
