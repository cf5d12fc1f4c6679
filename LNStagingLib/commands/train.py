"""``lnstaging train {seg,cls,patient}``: each task lives in LNStagingLib/training/<task>.py."""

from ._tasks import register_task_command


def register(sub):
    register_task_command(sub, "train", "train a model on a cohort in the data set format (docs/DATASET.md)", "training")
