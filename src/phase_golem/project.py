"""Where a project lives on disk: its root, `.phase-golem/`, config and store.

Importing this module is cheap: the config is validated (pydantic) only when a caller
needs the settings, and a read-only caller that needs only the store URL of an already
validated config never loads the validator at all (`config_source.py`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from phase_golem.config_source import (
    ConfigSource,
    read_config_source,
    redaction_env_of,
    remember_validated,
    storage_url_of,
    was_validated,
)
from phase_golem.safe_files import (
    CONFIG_LIMIT,
    FileRefused,
    ensure_private_directory,
    read_text_bounded,
)

if TYPE_CHECKING:
    from phase_golem.config import LoadedConfig
    from phase_golem.store import Store

STATE_DIR_NAME = ".phase-golem"
CONFIG_NAME = "phase-golem.toml"
GITIGNORE_ENTRY = ".phase-golem/"


class ProjectError(Exception):
    """The project is not set up the way a command needs (exit code 3)."""


def ensure_private_dir(path: Path) -> None:
    """A 0700 directory of ours (never tightened through a link); ProjectError otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ensure_private_directory(path)
    except FileRefused as exc:
        raise ProjectError(str(exc)) from None


def find_root(start: Path) -> Path:
    """The nearest directory at or above `start` holding a project; else `start` itself."""
    here = start.resolve()
    for candidate in (here, *here.parents):
        if (candidate / STATE_DIR_NAME).is_dir() or (candidate / CONFIG_NAME).is_file():
            return candidate
    return here


@dataclass
class Project:
    root: Path
    config_path: Path | None = None
    _config: LoadedConfig | None = field(default=None, repr=False)
    _store: Store | None = field(default=None, repr=False)

    @property
    def state_dir(self) -> Path:
        return self.root / STATE_DIR_NAME

    @property
    def config(self) -> LoadedConfig:
        return self.load_config()

    def load_config(self) -> LoadedConfig:
        """The validated config (every problem reported at once); loaded once."""
        if self._config is None:
            self._config = self._validate(read_config_source(self.root, self.config_path))
            self._register_secrets(self._config.settings.redaction.env)
        return self._config

    def _register_secrets(self, extra_names: Sequence[str]) -> None:
        """Hand the environment's secret values (and those `[redaction] env` names) to
        redaction, so nothing this command stores or prints carries them (issue 14)."""
        from phase_golem.secrets import register_environment_secrets

        register_environment_secrets(os.environ, extra_names)

    def _validate(self, source: ConfigSource) -> LoadedConfig:
        from phase_golem.config import config_from_source

        loaded = config_from_source(source)
        for warning in loaded.warnings:  # one line per key, where the config is first read
            logging.getLogger("phase_golem.config").warning("%s", warning)
        remember_validated(source, self.state_dir)
        return loaded

    @property
    def prefix(self) -> str:
        return self.config.settings.project.prefix

    def storage_url(self) -> str:
        """`[storage] url`, without the validator when this config text passed it before."""
        if self._config is None:
            source = read_config_source(self.root, self.config_path)
            if not was_validated(source, self.state_dir):
                self._config = self._validate(source)
            else:
                return storage_url_of(source)
        return self._config.settings.storage.url

    def store(self) -> Store:
        """Open the store; the project must have been initialised first."""
        if self._store is None:
            url = self.storage_url()
            if not self.state_dir.is_dir():
                raise ProjectError(
                    f"{self.root} is not a phase-golem project (no {STATE_DIR_NAME}/); "
                    "run `phase-golem init` first"
                )
            if self._config is None:  # read-only path: the names without the validator
                source = read_config_source(self.root, self.config_path)
                self._register_secrets(redaction_env_of(source))
            from phase_golem.store import open_store

            self._store = open_store(url, self.root)
        return self._store

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None


def load_project(root: Path | None, config_path: Path | None) -> Project:
    """The project at `root` (or found from the current directory), its config validated.

    The values of the environment's secrets (and of the variables `[redaction] env` names)
    are handed to redaction before anything is read or written.
    """
    resolved = find_root(root or Path.cwd()) if root is None else root.resolve()
    project = Project(resolved, config_path)
    project.load_config()
    return project


@dataclass(frozen=True)
class InitReport:
    root: Path
    created: tuple[str, ...]
    kept: tuple[str, ...]
    to_commit: tuple[str, ...] = ()  # files of the set-up git does not have yet

    @property
    def next_step(self) -> str | None:
        return setup_commit_command(self.to_commit) if self.to_commit else None


SETUP_FILES = (CONFIG_NAME, ".gitignore")
SETUP_MESSAGE = "Set up phase-golem"


def setup_commit_command(paths: tuple[str, ...] | list[str]) -> str:
    """The exact command that commits what `init` wrote (`run` needs a clean tree)."""
    return f"git add {' '.join(paths)} && git commit -m {SETUP_MESSAGE!r}"


def uncommitted_setup_files(root: Path) -> list[str]:
    """The files `init` writes that git does not have as they are now."""
    from phase_golem.workspace.git import dirty_paths

    dirty = set(dirty_paths(root))
    return [name for name in SETUP_FILES if name in dirty]


def init_project(root: Path, prefix: str | None, config_path: Path | None) -> InitReport:
    """Create `.phase-golem/` (0700), `changes/`, `_worklog/`, the config, the database.

    Safe to run again: what exists is kept, and the config is never overwritten.
    """
    from phase_golem.config import load_config, render_config_template
    from phase_golem.domain.items import validate_prefix
    from phase_golem.store import open_store
    from phase_golem.workspace.git import is_git_repo

    root = root.resolve()
    if not is_git_repo(root):
        raise ProjectError(f"{root} is not inside a git repository; run `git init` first")
    if prefix is not None:
        validate_prefix(prefix)
    created: list[str] = []
    kept: list[str] = []

    config_file = config_path or root / CONFIG_NAME
    if config_file.exists():
        kept.append(config_file.name)
    else:
        config_file.write_text(render_config_template(prefix or "WRK"), encoding="utf-8")
        created.append(CONFIG_NAME)
    # Load after writing so a broken existing config is reported before anything else changes.
    loaded = load_config(root, config_path)
    if prefix is not None and loaded.settings.project.prefix != prefix:
        kept.append(
            f"{CONFIG_NAME} keeps prefix {loaded.settings.project.prefix} (edit it to change)"
        )

    for name in ("changes", "_worklog", "_ideas"):
        directory = root / name
        (kept if directory.is_dir() else created).append(f"{name}/")
        directory.mkdir(exist_ok=True)

    state_dir = root / STATE_DIR_NAME
    (kept if state_dir.is_dir() else created).append(f"{STATE_DIR_NAME}/")
    ensure_private_dir(state_dir)
    ensure_private_dir(state_dir / "runs")
    from phase_golem.web_token import TOKEN_NAME, ensure_token

    try:
        if ensure_token(state_dir)[1]:
            created.append(f"{STATE_DIR_NAME}/{TOKEN_NAME} (the dashboard's token, 0600)")
    except FileRefused as exc:
        raise ProjectError(f"cannot make the dashboard token: {exc}") from None

    gitignore = root / ".gitignore"
    try:
        text = read_text_bounded(gitignore, CONFIG_LIMIT) if gitignore.exists() else ""
    except FileRefused as exc:
        raise ProjectError(f"cannot add .phase-golem/ to .gitignore: {exc}") from None
    ignored = {GITIGNORE_ENTRY, STATE_DIR_NAME, f"/{GITIGNORE_ENTRY}", f"/{STATE_DIR_NAME}"}
    if not any(line.strip() in ignored for line in text.splitlines()):
        with gitignore.open("a", encoding="utf-8") as handle:
            if text and not text.endswith("\n"):
                handle.write("\n")
            handle.write(f"{GITIGNORE_ENTRY}\n")
        created.append(".gitignore entry")

    store = open_store(loaded.settings.storage.url, root)
    store.close()
    return InitReport(root, tuple(created), tuple(kept), tuple(uncommitted_setup_files(root)))
