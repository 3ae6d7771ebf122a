"""Checks of a command line made before Hydra starts, so that what Hydra would report with its own
traceback, or would already have written, is one message and exit code 2 instead.

- Overrides that do not parse (``data.root=/my data`` split by the shell, ``key=[1,2``) and a
  ``--config-name`` that does not exist.
- The run folder (``hydra.run.dir``, or ``hydra.sweep.dir`` for ``-m``): writable, not holding
  another run, and claimed for this process (``run_directory``).
- A training sweep (``-m``): every member's configuration is composed and validated first, so a
  member that cannot run stops the sweep before the first member trains, naming it.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from segattn.cli.resolvers import CONFIG_DIR, register_resolvers
from segattn.cli.run_directory import check_before_hydra
from segattn.errors import ConfigError, RunDirectoryError

#: Hydra's flags that take the next word as their value.
VALUE_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--cfg", "-c", "--package", "-p"}
#: ``--info`` / ``-i`` take one of these words, or none.
INFO_WORDS = {"all", "config", "defaults", "defaults-tree", "plugins", "searchpath"}


def split_command_line(argv: Sequence[str]) -> tuple[dict[str, str], list[str]]:
    """Hydra's flags (with their values) and the overrides."""
    flags: dict[str, str] = {}
    overrides: list[str] = []
    words = list(argv)
    i = 0
    while i < len(words):
        word = words[i]
        if word.startswith("-"):
            name, sep, value = word.partition("=")
            if not sep and name in VALUE_FLAGS and i + 1 < len(words):
                value, i = words[i + 1], i + 1
            elif not sep and name in ("--info", "-i") and i + 1 < len(words) and words[i + 1] in INFO_WORDS:
                value, i = words[i + 1], i + 1
            flags[name] = value
        else:
            overrides.append(word)
        i += 1
    return flags, overrides


def check_command_line(argv: Sequence[str], default_config: str) -> tuple[str, list[str]]:
    """The config name and the overrides, or ``ConfigError`` for what Hydra could not read."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.errors import OverrideParseException

    flags, overrides = split_command_line(argv)
    config_name = flags.get("--config-name") or flags.get("-cn") or default_config
    own_configs = not any(flag in flags for flag in ("--config-path", "-cp", "--config-dir", "-cd"))
    if own_configs and not (CONFIG_DIR / f"{config_name}.yaml").is_file():
        available = sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))
        raise ConfigError(
            f"--config-name={config_name}: no such config in {CONFIG_DIR}; available: {', '.join(available)}"
        )
    try:
        parsed = OverridesParser.create().parse_overrides(overrides)
    except OverrideParseException as err:
        detail = str(err).splitlines()[0]
        raise ConfigError(
            f"cannot read the command line: {detail}. Overrides are key=value words; quote a value with spaces "
            "('data.root=/my data') or characters such as ~ (data.root=\"~/data\"), or expand them in the shell"
        ) from None
    empty = [o.input_line for o in parsed if not o.key_or_group]
    if empty:
        raise ConfigError(f"cannot read the override {empty[0]!r}: it names no setting (key=value, +key=value or ~key)")
    return config_name, overrides


def own_config_folder(argv: Sequence[str]) -> bool:
    """The command composes segattn's own configs (no ``--config-path`` / ``--config-dir``)."""
    flags, _ = split_command_line(argv)
    return not any(flag in flags for flag in ("--config-path", "-cp", "--config-dir", "-cd"))


def sweep_problems(config_name: str, overrides: list[str]) -> list[str]:
    """Compose and validate every member of a basic sweep; one line per member that cannot run."""
    from hydra import compose, initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from segattn.config import validate_train_config

    parsed = OverridesParser.create().parse_overrides(overrides)
    if any(o.is_sweep_override() and not o.is_discrete_sweep() for o in parsed):
        return []  # ranges and intervals belong to other sweepers (Optuna, ...): they choose the members
    jobs = [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]
    problems = []
    register_resolvers()
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3"):
        for number, job in enumerate(jobs):
            settings = [o for o in job if not o.lstrip("+~").startswith("hydra")]
            try:
                cfg = compose(config_name, overrides=[*settings, "paths.output_dir=/nonexistent/preflight"])
                validate_train_config(cfg)
            except ConfigError as err:
                detail = str(err).replace("invalid configuration:\n  - ", "").replace("\n  - ", "; ")
                problems.append(f"member {number} ({' '.join(settings)}): {detail}")
            except Exception as err:  # noqa: BLE001 - Hydra's own composition errors, e.g. an unknown group option
                problems.append(f"member {number} ({' '.join(settings)}): {str(err).splitlines()[0]}")
    return problems


def preflight(command: str, default_config: str, argv: Sequence[str] | None = None) -> None:
    """Run the checks for a command's ``main()``; on a problem print one message and exit 2."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        config_name, overrides = check_command_line(argv, default_config)
        multirun = "-m" in argv or "--multirun" in argv
        if command == "train" and multirun and own_config_folder(argv):
            problems = sweep_problems(config_name, overrides)
            if problems:
                raise ConfigError(
                    f"{len(problems)} member(s) of the sweep cannot run; none was started:\n  - "
                    + "\n  - ".join(problems)
                )
        check_before_hydra(argv, command)
    except (ConfigError, RunDirectoryError) as err:
        print(f"Error: {err}", file=sys.stderr)
        sys.exit(2)
