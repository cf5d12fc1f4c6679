"""Which options a command has, and which options an error message names that the command lacks (issue 25 item 19:
a message must never send the user to an option of another command)."""

from __future__ import annotations

import argparse
import importlib
import re

OPTION = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _subcommands(parser: argparse.ArgumentParser) -> dict:
    for action in parser._actions:  # argparse keeps sub-parsers only here
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def command_options(argv: list[str]) -> set[str]:
    """Option strings of the (sub-)command ``argv`` starts with, e.g. ['priors', 'fit', ...] -> options of 'priors fit'."""
    from LNStagingLib.cli import build_parser

    parser = build_parser()
    options = {option for action in parser._actions for option in action.option_strings}
    for word in argv:
        choices = _subcommands(parser)
        if word not in choices:
            break
        parser = choices[word]
        lazy = getattr(parser, "_task_module", None)  # commands/_tasks.py adds a task's options when it parses
        if lazy:
            importlib.import_module(lazy).add_arguments(parser)
            parser._task_module = None
        options |= {option for action in parser._actions for option in action.option_strings}
    return options


def unknown_options(argv: list[str], message: str) -> list[str]:
    """The --options ``message`` names that the command of ``argv`` does not have."""
    known = command_options(argv)
    return [option for option in OPTION.findall(message) if option not in known]
