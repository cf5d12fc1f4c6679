"""Shared wiring for sub-commands with one sub-parser per model task (train, evaluate)."""

import importlib

TASKS = {"seg": "stage-1 LN segmentation (attention U-Net)", "cls": "stage-2 candidate classification (CNN + GNN)",
         "patient": "patient-level metastasis (2D ResNet + texture encoding)"}


def register_task_command(sub, command: str, help_text: str, package: str) -> None:
    """Add ``lnstaging COMMAND TASK``; TASK's options and entry point are ``add_arguments``/``main`` in package.TASK."""
    parser = sub.add_parser(command, help=help_text)
    tasks = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for task, task_help in TASKS.items():
        try:
            module = importlib.import_module(f"LNStagingLib.{package}.{task}")
        except ModuleNotFoundError as error:
            if error.name != f"LNStagingLib.{package}.{task}":
                raise
            continue  # task not built yet
        task_parser = tasks.add_parser(task, help=task_help)
        module.add_arguments(task_parser)
        task_parser.set_defaults(func=module.main)
