"""Deploy, update, inspect and tear down a HistoLabel stack: `python -m infra --help`.

The templates are generated in Python from `histolabel.resources` (the stateful resources)
so that the local cloud and a deployed stack are built from one set of definitions.
"""
