"""Started by test_scaling_ddp.py under `torchrun --nproc-per-node 2`: the trainings of a plan (JSON: a list of
lnstaging command lines, or ["seg-sgd" | "patient-sgd", cohort, out, fold]) one after the other in the same two ranks, so the test pays
for starting the processes (torch, MONAI) once."""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from LNStagingLib.cli import main as cli  # noqa: E402

from scaling_support import train_patient_sgd, train_seg_sgd  # noqa: E402


SGD = {"seg-sgd": train_seg_sgd, "patient-sgd": train_patient_sgd}


def main(plan_file: str) -> int:
    import torch

    torch.set_num_threads(1)
    for job in json.loads(Path(plan_file).read_text()):
        if job[0] in SGD:
            SGD[job[0]](job[1], job[2], int(job[3]), distributed=True)
        elif cli(job) != 0:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
