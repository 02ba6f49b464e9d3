"""Where the config file is, its text, and which texts have already passed validation.

Validating `phase-golem.toml` builds pydantic models, which costs more start-up than a
read-only command like `status` spends on everything else; such a command needs only
`[storage] url`. So a text that passed full validation is remembered by its digest in
`.phase-golem/config.verified`, and a later command that finds the same text (validated by
the same rules) takes the URL straight from the TOML. Any change to the file, or to the
modules holding the rules, misses and validates fully again; commands that act on the
settings always validate fully.
"""

from __future__ import annotations

import contextlib
import os
import tomllib
import zlib
from dataclasses import dataclass
from pathlib import Path

from phase_golem import __version__

CONFIG_NAME = "phase-golem.toml"
VERDICT_NAME = "config.verified"
# `StorageConfig().url` (domain/pipelines.py), here so a read needs not import the settings.
DEFAULT_STORAGE_URL = "sqlite:///.phase-golem/state.db"
# The modules whose rules decide whether a text is valid; editing one invalidates verdicts.
_RULE_MODULES = ("config.py", "config_schema.py", "domain/pipelines.py", "domain/items.py")


class ConfigError(ValueError):
    """A config file that cannot be used; the message lists every problem."""


@dataclass(frozen=True, slots=True)
class ConfigSource:
    """The config file a project uses: `path` None (and no text) means the defaults."""

    path: Path | None
    base_dir: Path
    text: str | None
    root: Path  # the project's root: relative store paths must stay inside it

    def digest(self) -> str:
        """What the verdict is keyed by: the text, its path, and the rules that judged it.

        Checksums, not a cryptographic hash: they detect a change; they guard nothing (whoever
        could forge the verdict could as well rewrite the config), and they load in no time.
        """
        rules = Path(__file__).parent
        stamp = [__version__, str(self.path)]
        for name in _RULE_MODULES:
            try:
                info = (rules / name).stat()
            except OSError:
                stamp.append(f"{name}:missing")
            else:
                stamp.append(f"{name}:{info.st_mtime_ns}:{info.st_size}")
        data = "\0".join([*stamp, self.text or ""]).encode()
        return f"{zlib.crc32(data):08x}{zlib.adler32(data):08x}{len(data):x}"


def read_config_source(root: Path, config_path: Path | None = None) -> ConfigSource:
    """`--config`, else `ROOT/phase-golem.toml`; a missing default file means defaults.

    Read with a size bound and never through a FIFO or device (`safe_files`).
    """
    from phase_golem.safe_files import CONFIG_LIMIT, FileRefused, read_text_bounded

    if config_path is not None:
        path = config_path if config_path.is_absolute() else Path.cwd() / config_path
        if not os.path.lexists(path):
            raise ConfigError(f"{config_path}: config file not found")
        base_dir = path.parent
    else:
        path = root / CONFIG_NAME
        base_dir = root
        if not os.path.lexists(path):
            return ConfigSource(None, root, None, root)
    try:
        text = read_text_bounded(path, CONFIG_LIMIT, what=path.name)
    except FileRefused as exc:
        raise ConfigError(str(exc)) from None
    return ConfigSource(path, base_dir, text, root)


def _verdict_path(state_dir: Path) -> Path:
    return state_dir / VERDICT_NAME


def was_validated(source: ConfigSource, state_dir: Path) -> bool:
    """Whether this very text passed validation under the current rules."""
    if source.text is None:
        return True
    try:
        # O_NOFOLLOW: a symlink planted in place of the verdict is never read through.
        fd = os.open(_verdict_path(state_dir), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as handle:
        recorded = handle.read(200).decode("ascii", "replace").strip()
    return recorded == source.digest()


def remember_validated(source: ConfigSource, state_dir: Path) -> None:
    """Record that `source` passed full validation (a best-effort cache: errors are ignored)."""
    if source.text is None or not state_dir.is_dir() or was_validated(source, state_dir):
        return
    target = _verdict_path(state_dir)
    if target.is_symlink() or (target.exists() and not target.is_file()):
        return  # not ours: leave it alone
    from phase_golem.fsutil import write_atomically

    with contextlib.suppress(OSError):
        write_atomically(target, source.digest() + "\n", private=True)


def storage_url_of(source: ConfigSource) -> str:
    """`[storage] url` of a text that already passed validation (so it is well formed)."""
    if source.text is None:
        return DEFAULT_STORAGE_URL
    storage = tomllib.loads(source.text).get("storage", {})
    url = storage.get("url", DEFAULT_STORAGE_URL) if isinstance(storage, dict) else None
    if not isinstance(url, str):
        raise ConfigError(f"{source.path}: storage.url must be a string")
    return url


def redaction_env_of(source: ConfigSource) -> tuple[str, ...]:
    """`[redaction] env` of a text that already passed validation: the variable names whose
    values are redacted besides those whose names look secret."""
    if source.text is None:
        return ()
    redaction = tomllib.loads(source.text).get("redaction", {})
    names = redaction.get("env", []) if isinstance(redaction, dict) else []
    return tuple(n for n in names if isinstance(n, str)) if isinstance(names, list) else ()
