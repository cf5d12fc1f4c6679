"""``lnstaging models {list,import}``: the model catalogue, and offline import of a weights file (sha256-checked)."""

from pathlib import Path


def register(sub):
    parser = sub.add_parser("models", help="list the model catalogue or import a weights file for offline use")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="models in Resources/Models.json, what they were trained on, their body "
                                              "site and whether their weights are here")
    listing.set_defaults(func=list_models)
    importing = actions.add_parser("import", help="copy a weights file into the cache after checking its sha256")
    importing.add_argument("file", type=Path)
    importing.add_argument("--id", required=True, help="catalogue id the file belongs to")
    importing.set_defaults(func=import_model)


def list_models(args) -> int:
    from ..models.catalogue import Catalogue

    catalogue = Catalogue.read()
    if not catalogue.entries:
        print("The catalogue is empty.")
    for entry in catalogue.entries.values():
        try:
            where = str(catalogue.resolve(entry.id))
        except Exception as error:  # report, do not stop the listing
            where = f"not available ({error})"
        default = " (default)" if entry.default else ""
        print(f"{entry.id} {entry.version} [{entry.task}]{default}: {where}")
        print(f"    trained on: {entry.training_domain or 'not stated'}; body site: {site_of(entry)}")
    return 0


def site_of(entry) -> str:
    """The catalogue's body site; "" in older catalogues means any site (models/catalogue.py)."""
    return "any" if entry.body_site in ("", "any") else entry.body_site


def import_model(args) -> int:
    from ..models.catalogue import Catalogue

    target = Catalogue.read().import_weights(args.file, args.id)
    print(f"Imported {args.file.name} as {args.id}: {target}")
    return 0
