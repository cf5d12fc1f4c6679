"""``lnstaging cv``: nested cross-validation of the three stages (LNStagingLib/training/cross_validation.py)."""


def register(sub) -> None:
    from ..training import cross_validation

    parser = sub.add_parser("cv", help="nested cross-validation of seg, cls and patient models on a cohort",
                            description=cross_validation.__doc__.split("\n\n")[1])
    cross_validation.add_arguments(parser)
    parser.set_defaults(func=cross_validation.main)
