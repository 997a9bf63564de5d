"""The stock's background tasks, enqueued by name ("inventory.tasks.import_keys")."""

from faka.inventory import keys


def import_keys(import_id: int) -> None:
    keys.run_import(import_id)
