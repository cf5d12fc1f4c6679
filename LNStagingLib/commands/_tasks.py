"""Shared wiring for sub-commands with one sub-parser per model task (train, evaluate).

A task's options live in its module (``add_arguments``/``main`` in LNStagingLib.<package>.<task>), which imports numpy
and friends; the module is imported only when that task is parsed, so ``lnstaging --help`` stays quick.
"""

import argparse
import importlib
import importlib.util

TASKS = {"seg": "stage-1 LN segmentation (attention U-Net)", "cls": "stage-2 candidate classification (CNN + GNN)",
         "patient": "patient-level metastasis (2D ResNet + texture encoding)"}


class LazyTaskParser(argparse.ArgumentParser):
    """A sub-parser that adds its task module's options the first time it parses (including for --help)."""

    def __init__(self, *args, task_module: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._task_module = task_module

    def parse_known_args(self, args=None, namespace=None):
        if self._task_module is not None:
            module, self._task_module = importlib.import_module(self._task_module), None
            module.add_arguments(self)
            self.set_defaults(func=module.main)
        return super().parse_known_args(args, namespace)


def register_task_command(sub, command: str, help_text: str, package: str) -> None:
    """Add ``lnstaging COMMAND TASK``; TASK's options and entry point are ``add_arguments``/``main`` in package.TASK."""
    parser = sub.add_parser(command, help=help_text)
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True, parser_class=LazyTaskParser)
    for task, task_help in TASKS.items():
        name = f"LNStagingLib.{package}.{task}"
        if importlib.util.find_spec(name) is None:
            continue  # task not built yet
        tasks.add_parser(task, help=task_help, task_module=name)
