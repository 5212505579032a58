"""What AWS actions the code calls, read from its source (no import, no AWS).

For an entry module (a Lambda handler's module, a job's module) this follows its imports
(function-local ones too: a lazy import is still code the function may run) through our own
packages, and collects
- boto3 calls: in a module that makes a `client("service", ...)`, every called attribute that
  is an operation of that service (`put_item` -> dynamodb:PutItem), plus paginators, waiters
  and presigned URLs (`generate_presigned_url("put_object")` -> s3:PutObject: the URL is
  signed with the function's own credentials);
- s3fs calls: calls of the s3fs adapters' functions, each declared in `S3FS_ACTIONS`.

The result is compared with infra.permissions (tests/infra/test_permissions.py): every call
must be granted, and each role must grant nothing else.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import botocore.session
from botocore import xform_name

ROOT = Path(__file__).resolve().parent.parent
# Where our modules live: import name prefix -> folder its files are found under.
SOURCE_ROOTS = {"histolabel": ROOT, "gpu_jobs": ROOT, "infra": ROOT, "chalicelib": ROOT / "functions",
                "handlers": ROOT / "functions", "app": ROOT / "functions"}  # fmt: skip

READ = ("s3:GetObject", "s3:ListBucket")
WRITE = ("s3:PutObject", "s3:AbortMultipartUpload")
DELETE = ("s3:DeleteObject", "s3:ListBucket")
# The s3fs adapters' functions and the S3 actions each needs (multipart uploads are
# s3:PutObject; zarr and s3fs list prefixes before reading).
S3FS_ACTIONS: dict[str, tuple[str, ...]] = {
    # histolabel.adapters.s3
    "require_readable_source": READ,
    "filesystem": READ,
    "zarr_store": READ,
    "require_in_bucket": (),
    "split_uri": (),
    # histolabel.adapters.pyramids
    "open_source": READ,
    "object_size": READ,
    "prefix_size": READ,
    "remove_prefix": DELETE,
    "open_group": READ,  # mode "w"/"a" adds WRITE + DELETE, below
    "write_table": WRITE,
    "read_table": READ,
    "upload_file": WRITE,
    "group_attrs": READ,
    "S3LevelWindow": READ,
    "LabelReader": READ,
    "table_row_groups": READ,
    "read_row_group": READ,
    "read_rows": READ,
    "groups_holding": (),
    "S3LabelSink": WRITE,
    "S3PathError": (),
    # histolabel.adapters.artifacts
    "project_prefix": (),
    "features_uri": (),
    "model_prefix": (),
    "predictions_prefix": (),
    "remove": DELETE,
    "write_features": (*WRITE, *DELETE),
    "FeatureWriter": (*WRITE, *DELETE),
    "read_features": READ,
    "open_features": READ,
    "feature_rows": READ,
    "read_bytes": READ,
    "write_bytes": WRITE,
    "exists": READ,
    "write_model": WRITE,
    "read_model": READ,
    "write_predictions": WRITE,
    "read_predictions": READ,
    "slide_scores": READ,
}
# Calls IAM authorizes as another action.
IMPLIED = {
    "s3:HeadObject": "s3:GetObject",
    "s3:ListObjectsV2": "s3:ListBucket",
    # Multipart uploads are authorized as s3:PutObject, listing their parts as its own action.
    "s3:CreateMultipartUpload": "s3:PutObject",
    "s3:UploadPart": "s3:PutObject",
    "s3:CompleteMultipartUpload": "s3:PutObject",
    "s3:ListParts": "s3:ListMultipartUploadParts",
    "s3:ListObjectVersions": "s3:ListBucketVersions",
    "s3:DeleteObjects": "s3:DeleteObject",  # a batch delete is authorized per key
    "lambda:Invoke": "lambda:InvokeFunction",
}
TRANSACT_ITEMS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
S3FS_MODULES = ("histolabel.adapters.s3", "histolabel.adapters.pyramids", "histolabel.adapters.artifacts")


@cache
def _operations(service: str) -> dict[str, str]:
    """snake_case method -> IAM action of one boto3 service."""
    model = botocore.session.get_session().get_service_model(service)
    prefix = model.metadata.get("signingName", model.endpoint_prefix)
    return {xform_name(op): f"{prefix}:{op}" for op in model.operation_names}


@cache
def _waiters(service: str) -> dict[str, str]:
    session = botocore.session.get_session()
    try:
        model = session.get_waiter_model(service)
    except Exception:
        return {}
    ops = {op: action for op, action in ((a.rsplit(":", 1)[1], a) for a in _operations(service).values())}
    return {xform_name(name): ops[model.get_waiter(name).operation] for name in model.waiter_names}


def module_file(name: str) -> Path | None:
    top = name.split(".", 1)[0]
    base = SOURCE_ROOTS.get(top)
    if base is None:
        return None
    path = base.joinpath(*name.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _imports(tree: ast.Module, module: str) -> set[str]:
    found: set[str] = set()
    package = (
        module
        if module_file(module) and str(module_file(module)).endswith("__init__.py")
        else (module.rsplit(".", 1)[0] if "." in module else "")
    )
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if module_file(name) is not None}


@dataclass
class Calls:
    modules: set[str] = field(default_factory=set)
    # action -> where it is called ("module:line")
    actions: dict[str, set[str]] = field(default_factory=dict)
    unknown_s3fs: set[str] = field(default_factory=set)

    def add(self, action: str, where: str) -> None:
        self.actions.setdefault(action, set()).add(where)


def _literal(node: ast.AST | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _scan(
    module: str,
    tree: ast.Module,
    calls: Calls,
    *,
    services: set[str] | None = None,
    s3fs_adapter: bool | None = None,
) -> None:
    services = (
        services
        if services is not None
        else {
            s
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr) == "client"
            and node.args
            and (s := _literal(node.args[0]))
        }
    )
    if s3fs_adapter is None:
        s3fs_adapter = module in S3FS_MODULES
    # TransactWriteItems is authorized per item: the actions of the item kinds the code builds.
    item_kinds = {
        k.value for node in ast.walk(tree) if isinstance(node, ast.Dict) for k in node.keys
        if isinstance(k, ast.Constant) and k.value in TRANSACT_ITEMS
    }  # fmt: skip
    s3fs_names: set[str] = set()
    s3fs_aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module in S3FS_MODULES:
            s3fs_names.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module == "histolabel.adapters":
            s3fs_aliases.update(
                a.asname or a.name for a in node.names if f"histolabel.adapters.{a.name}" in S3FS_MODULES
            )
        elif isinstance(node, ast.Import):
            s3fs_aliases.update(a.asname or a.name for a in node.names if a.name in S3FS_MODULES)
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
        where = f"{module}:{node.lineno}"
        for service in services:
            ops = _operations(service)
            if name == "transact_write_items" and service == "dynamodb":
                for kind in item_kinds:
                    calls.add(TRANSACT_ITEMS[kind], where)
            elif name in ops:
                calls.add(IMPLIED.get(ops[name], ops[name]), where)
            elif name == "get_paginator" and (op := _literal(node.args[0] if node.args else None)) in ops:
                calls.add(ops[str(op)], where)
            elif name == "get_waiter" and (w := _literal(node.args[0] if node.args else None)):
                action = _waiters(service).get(w)
                if action:
                    calls.add(action, where)
            elif name == "generate_presigned_url":
                method = _literal(node.args[0] if node.args else None) or next(
                    (_literal(k.value) for k in node.keywords if k.arg == "ClientMethod"), None
                )
                if method in ops:
                    calls.add(IMPLIED.get(ops[str(method)], ops[str(method)]), where)
        via_adapter = (isinstance(func, ast.Name) and func.id in s3fs_names) or (
            isinstance(func, ast.Attribute)
            and isinstance(func.value, ast.Name)
            and func.value.id in s3fs_aliases
        )
        if name in S3FS_ACTIONS and (via_adapter or s3fs_adapter):
            for action in S3FS_ACTIONS[name]:
                calls.add(action, where)
            mode = _literal(node.args[1] if len(node.args) > 1 else None) or next(
                (_literal(k.value) for k in node.keywords if k.arg == "mode"), None
            )
            if name in ("open_group", "zarr_store") and mode in ("w", "a", "r+", "w-"):
                for action in (*WRITE, *DELETE):
                    calls.add(action, where)


# Adapter modules are scanned per top-level function and class method, and only what the
# role's other modules name is counted: the API's DynamoEventStore appends and reads; the
# audit's scan_streams or a test's raw_put are not its calls unless something it runs names them.
ADAPTER_PREFIX = "histolabel.adapters."
# Modules that build adapters for everyone; each role says which of its factories it uses.
COMPOSITION = "histolabel.composition"


def _names(tree: ast.AST) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.alias):
            found.add(node.name.rsplit(".", 1)[-1])
    return found


def _symbols(tree: ast.Module) -> dict[str, ast.AST]:
    """name -> node of each top-level function and class; "Class.method" for methods (a class's
    own node holds its body but its methods)."""
    out: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            out[node.name] = node
        elif isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
            out[node.name] = ast.Module(body=[n for n in node.body if n not in methods], type_ignores=[])
            for item in methods:
                out[f"{node.name}.{item.name}"] = item
    return out


def _used(symbols: dict[str, ast.AST], named: set[str]) -> set[str]:
    """Symbols the rest of the code names, closed over what they name in turn. A method
    counts when its class is used and its name is named (or it is a dunder: called by Python)."""

    def wanted(key: str, names: set[str], used: set[str]) -> bool:
        if "." not in key:
            return key in names or key.startswith("_")
        cls, method = key.split(".", 1)
        return cls in used and (method in names or method.startswith("__"))

    used: set[str] = set()
    names = set(named)
    changed = True
    while changed:
        changed = False
        for key in symbols:
            if key not in used and wanted(key, names, used):
                used.add(key)
                names |= _names(symbols[key])
                changed = True
    return used


def reachable(entries: Iterable[str], factories: Iterable[str] = (), skip: Iterable[str] = ()) -> Calls:
    """The calls of `entries` and what they import; `factories`: the composition root's
    builders the role uses (the root itself is not followed: it builds for every role)."""
    calls = Calls()
    todo = list(entries)
    skipped = set(skip)
    factory_names = set(factories)
    trees: dict[str, ast.Module] = {}
    if factory_names:
        root = ast.parse(module_file(COMPOSITION).read_text())  # type: ignore[union-attr]
        for top in root.body:
            name = getattr(top, "name", "")
            if name in factory_names:
                trees[f"{COMPOSITION}.{name}"] = ast.Module(body=[top], type_ignores=[])
        for name, tree in list(trees.items()):
            todo.extend(_imports(tree, COMPOSITION))
            calls.modules.add(name)
    adapters: dict[str, ast.Module] = {}
    while todo:
        module = todo.pop()
        if module in calls.modules or module == COMPOSITION or module in skipped:
            continue
        path = module_file(module)
        if path is None:
            continue
        calls.modules.add(module)
        tree = ast.parse(path.read_text(), str(path))
        if module.startswith(ADAPTER_PREFIX):
            adapters[module] = tree
        else:
            trees[module] = tree
        todo.extend(_imports(tree, module) - calls.modules)
    for module, tree in trees.items():
        _scan(module, tree, calls)
    named = set().union(*(_names(t) for t in trees.values())) if trees else set()
    # Within an adapter, a used symbol uses what it names (self._get, helper functions), and
    # so across adapters (the event store's append MACs each event with the seals adapter):
    # grow the named set until no adapter uses more.
    symbols_of = {module: _symbols(tree) for module, tree in adapters.items()}
    used_of: dict[str, set[str]] = {module: set() for module in adapters}
    while True:
        for module, symbols in symbols_of.items():
            used_of[module] = _used(symbols, named)
        grown = named.union(*(_names(symbols_of[m][k]) for m, used in used_of.items() for k in used))
        if grown == named:
            break
        named = grown
    for module, tree in adapters.items():
        symbols = symbols_of[module]
        used = used_of[module]
        services = {
            s
            for node in ast.walk(tree)
            if isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "client"
            and node.args
            and (s := _literal(node.args[0]))
        }
        for n in sorted(used):
            part = ast.Module(body=[symbols[n]], type_ignores=[])  # type: ignore[list-item]
            _scan(module, part, calls, services=services, s3fs_adapter=module in S3FS_MODULES)
    return calls


def s3fs_functions() -> set[str]:
    """The public functions and classes of the s3fs adapters (each must be in S3FS_ACTIONS)."""
    names: set[str] = set()
    for module in S3FS_MODULES:
        path = module_file(module)
        assert path is not None
        tree = ast.parse(path.read_text())
        names.update(
            n.name
            for n in tree.body
            if isinstance(n, ast.FunctionDef | ast.ClassDef) and not n.name.startswith("_")
        )
    return names


EVENT_MAC_KEY_ACTIONS = frozenset({"kms:GenerateDataKey", "kms:Decrypt"})

# Which resource an adapter's calls act on (the table, bucket, queue or pool it is bound to).
MODULE_RESOURCE = {
    "histolabel.adapters.dynamo_events": "events",
    "histolabel.adapters.dynamo_leases": "projections",
    "histolabel.adapters.anchor_store": "anchors",
    "histolabel.runtime.export_anchor_lambda": "anchor_function",
    "histolabel.adapters.dynamo_projections": "projections",
    "histolabel.adapters.batch": "batch",
    "histolabel.adapters.cognito": "user_pool",
}


def by_resource(calls: Calls) -> dict[str, set[str]]:
    """resource -> actions; S3 calls act on the data bucket."""
    out: dict[str, set[str]] = {}
    for action, sites in calls.actions.items():
        for site in sites:
            module = site.rsplit(":", 1)[0]
            if module == "histolabel.adapters.seals":
                # one adapter, two keys: the data keys that MAC events, signatures of anchors
                resource = "event_mac_key" if action in EVENT_MAC_KEY_ACTIONS else "anchor_key"
            elif module == "histolabel.adapters.health":
                # /health reads one key of each table (the events table stands for both: GetItem
                # is granted on both wherever it runs) and heads an object of the data bucket
                resource = "data" if action.startswith("s3:") else "events"
            elif module in MODULE_RESOURCE:
                resource = MODULE_RESOURCE[module]
            else:
                resource = "data" if action.startswith("s3:") else f"? {module}"
            out.setdefault(resource, set()).add(action)
    return out
