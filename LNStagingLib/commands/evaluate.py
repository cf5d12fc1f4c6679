"""``lnstaging evaluate {seg,cls,patient}``: each task lives in LNStagingLib/evaluation/<task>.py."""

from ._tasks import register_task_command


def register(sub):
    register_task_command(sub, "evaluate", "evaluate trained models on a cohort (FROC, Dice, patient metrics)", "evaluation")
